//! The calendar: which 5-minute, hourly, daily, monthly and yearly bucket of local time an
//! instant falls in.
