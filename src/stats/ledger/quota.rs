//! Data-cap quotas: a limit on a source's (or the combined) bytes per day, week, month
//! (from a reset day) or rolling N days.
