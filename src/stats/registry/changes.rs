//! Changes of the running plugin's set of sources: add (or resume), retire, purge, and
//! the sources file applied as it is now (SIGHUP). Each is serialized by the registry's
//! lock, saved to the sources file before it applies, and never stops another source.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::{Entry, Origin, Registry, SourceChangeError, FIRST_POLL_WAIT};
use crate::source::{Member, SourceEntry, SourceName, SourceSet};
use crate::stats::poller::{Snapshot, SourceSnapshot};
use crate::stats::totals::Counters;
use crate::stats::StatsError;

impl Registry {
    fn set(&self) -> Result<&Arc<Mutex<SourceSet>>, SourceChangeError> {
        match &self.origin {
            Origin::Set(set) => Ok(set),
            Origin::Single(_) => Err(SourceChangeError::Fixed),
        }
    }

    /// Adds `name` counting `spec`, or resumes a retired source of that name; saved to
    /// the sources file before it starts. Nothing else stops.
    pub(crate) async fn add_source(
        &self,
        name: &str,
        spec: &str,
    ) -> Result<SourceSnapshot, StatsError> {
        let _op = self.ops.lock().await;
        let set = self.set()?;
        let name = SourceName::new(name).map_err(|e| SourceChangeError::Refused(e.to_string()))?;
        if let Some(e) = self.entries().iter().find(|e| e.name == name) {
            if !e.retired() {
                return Err(SourceChangeError::Exists(name.to_string()).into());
            }
        }
        let parsed = crate::source::SourceSpec::parse(spec)
            .map_err(|e| SourceChangeError::Refused(format!("source {name}: {e}")))?;
        if parsed.kind() == crate::source::ENGINE_KIND {
            return Err(SourceChangeError::Engine.into());
        }
        drop(parsed);
        let mut set = set.lock().await;
        let member = set
            .build(SourceEntry {
                name: name.clone(),
                spec: spec.to_string(),
                retired: false,
            })
            .await
            .map_err(SourceChangeError::from)?;
        set.put(member.clone()).map_err(SourceChangeError::from)?;
        self.stop_entry(&name).await;
        let entry = self.open_member(&set, &member).await.map_err(|e| {
            SourceChangeError::Refused(format!("{e}; the sources file lists it, a restart retries"))
        })?;
        tracing::info!(source = %name, kind = member.kind, "source added");
        self.put_entry(entry);
        self.publish();
        Ok(self.first_poll(&name).await)
    }

    /// `name`'s snapshot once its first poll is answered or failed (at most
    /// [`FIRST_POLL_WAIT`]), so an add can say at once whether the source answers.
    async fn first_poll(&self, name: &SourceName) -> SourceSnapshot {
        let mut snapshots = self.snapshots.subscribe();
        let find = |s: &Snapshot| s.sources.iter().find(|x| x.name == name.as_str()).cloned();
        let deadline = tokio::time::Instant::now() + FIRST_POLL_WAIT;
        loop {
            let current = find(&snapshots.borrow_and_update());
            if let Some(s) = current
                .as_ref()
                .filter(|s| s.health.polls + s.health.poll_errors > 0)
            {
                return s.clone();
            }
            match tokio::time::timeout_at(deadline, snapshots.changed()).await {
                Ok(Ok(())) => {}
                _ => return current.unwrap_or_default(),
            }
        }
    }

    fn put_entry(&self, entry: Entry) {
        let mut entries = self.entries_mut();
        match entries.iter_mut().find(|e| e.name == entry.name) {
            Some(e) => *e = entry,
            None => entries.push(entry),
        }
    }

    /// Stops `name`'s poll task (a final poll and save) and keeps its view as retired.
    async fn stop_entry(&self, name: &SourceName) -> Option<Result<(), String>> {
        let run = {
            let mut entries = self.entries_mut();
            entries
                .iter_mut()
                .find(|e| &e.name == name)
                .and_then(|e| e.run.take())
        }?;
        run.stop.trigger();
        Some(match run.task.await {
            Ok(r) => r,
            Err(e) => Err(format!("poll task ended abnormally: {e}")),
        })
    }

    /// Retires `name`: its poll task stops after a final poll and save; its totals stay in
    /// the combined figures; it is saved as retired in the sources file.
    pub(crate) async fn remove_source(&self, name: &str) -> Result<Counters, StatsError> {
        let _op = self.ops.lock().await;
        let set = self.set()?;
        let name = self.known(name)?;
        let mut set = set.lock().await;
        let Some(member) = set.member(&name).cloned() else {
            return Err(SourceChangeError::Unknown(name.to_string()).into());
        };
        if member.entry.retired {
            return Err(
                SourceChangeError::Refused(format!("source {name} is retired already")).into(),
            );
        }
        if member.built.as_ref().is_some_and(|b| b.engine.is_some()) {
            return Err(SourceChangeError::Refused(format!(
                "source {name} is the embedded engine, which holds the daemon's torrents: \
                 remove it from the sources file and restart"
            ))
            .into());
        }
        let retired = Member {
            entry: SourceEntry {
                retired: true,
                ..member.entry.clone()
            },
            built: None,
            ..member
        };
        set.put(retired).map_err(SourceChangeError::from)?;
        if let Some(Err(e)) = self.stop_entry(&name).await {
            tracing::warn!(source = %name, error = %e, "the removed source's final save failed; its files keep the last totals saved");
        }
        tracing::info!(source = %name, "source retired: no longer polled, its totals still count");
        self.publish();
        Ok(self.totals_of(Some(name.as_str())))
    }

    fn known(&self, name: &str) -> Result<SourceName, SourceChangeError> {
        self.entries()
            .iter()
            .find(|e| e.name.as_str() == name)
            .map(|e| e.name.clone())
            .ok_or_else(|| SourceChangeError::Unknown(name.chars().take(64).collect()))
    }

    /// Deletes a retired source's files and forgets it: its totals leave the combined
    /// figures. Answers with the totals deleted.
    pub(crate) async fn purge_source(&self, name: &str) -> Result<Counters, StatsError> {
        let _op = self.ops.lock().await;
        let set = self.set()?;
        let name = self.known(name)?;
        if self
            .entries()
            .iter()
            .any(|e| e.name == name && !e.retired())
        {
            return Err(SourceChangeError::Active(name.to_string()).into());
        }
        let mut set = set.lock().await;
        let dir = set.files_dir(&name);
        set.forget(&name).map_err(SourceChangeError::from)?;
        let removed = {
            let mut entries = self.entries_mut();
            let i = entries.iter().position(|e| e.name == name);
            i.map(|i| entries.remove(i))
        };
        let totals = removed
            .map(|e| e.view.read().acc.totals)
            .unwrap_or_default();
        // The stores' locks go with the entry; then the files.
        let result = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || std::fs::remove_dir_all(&dir)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Ok(Err(e)) => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not delete a purged source's files")
            }
            Err(e) => tracing::warn!(error = %e, "the purge task failed"),
        }
        #[cfg(feature = "ledger")]
        {
            let (ledger, key) = (self.ledger().clone(), name.to_string());
            match tokio::task::spawn_blocking(move || ledger.purge(&key)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not delete a purged source's calendar")
                }
                Err(e) => tracing::warn!(error = %e, "the ledger's purge task failed"),
            }
        }
        tracing::warn!(source = %name, upload = totals.total_upload, download = totals.total_download, "source purged: its files and calendar are deleted and its totals no longer count");
        self.publish();
        Ok(totals)
    }

    /// Applies the sources file as it is now (SIGHUP): new active entries start, entries
    /// retired or gone stop (retired), changed specs restart with their totals. Returns
    /// what changed; each refusal is one message and leaves that source as it was.
    pub(crate) async fn reload_sources(&self) -> Result<Vec<String>, Vec<String>> {
        let Ok(set) = self.set() else {
            return Ok(Vec::new());
        };
        let file = {
            let set = set.lock().await;
            set.read_file()
                .map_err(|e| vec![format!("{e}; the running sources stay")])?
        };
        let running: Vec<(SourceName, String)> = {
            let set = set.lock().await;
            set.members()
                .iter()
                .filter(|m| !m.entry.retired)
                .map(|m| (m.entry.name.clone(), m.entry.spec.clone()))
                .collect()
        };
        let mut done = Vec::new();
        let mut problems = Vec::new();
        for (name, spec) in &running {
            match file.get(name) {
                Some(e) if !e.retired && &e.spec == spec => {}
                Some(e) if !e.retired => match self.restart_with(name, &e.spec).await {
                    Ok(()) => done.push(format!("source {name} restarted with its new spec")),
                    Err(err) => problems.push(format!("source {name}: {err}")),
                },
                _ => match self.remove_source(name.as_str()).await {
                    Ok(_) => done.push(format!("source {name} retired")),
                    Err(err) => problems.push(format!("source {name}: {err}")),
                },
            }
        }
        for e in file.sources.iter().filter(|e| !e.retired) {
            if running.iter().any(|(n, _)| n == &e.name) {
                continue;
            }
            match self.add_source(e.name.as_str(), &e.spec).await {
                Ok(_) => done.push(format!("source {} added", e.name)),
                Err(err) => problems.push(format!("source {}: {err}", e.name)),
            }
        }
        if problems.is_empty() {
            Ok(done)
        } else {
            Err(problems)
        }
    }

    /// Replaces an active source's spec, keeping its totals.
    async fn restart_with(&self, name: &SourceName, spec: &str) -> Result<(), StatsError> {
        self.remove_source(name.as_str()).await?;
        self.add_source(name.as_str(), spec).await.map(|_| ())
    }
}
