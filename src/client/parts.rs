//! Which worker searches which part of the current job, and which of their reports still count.
//!
//! Each worker slot owns a disjoint part of the job's 2^32 nonce positions ([`nonce_ranges`]) and
//! a cursor within it, so a worker paused and resumed carries on where it stopped instead of
//! searching again. Every dispatch is a numbered run; a report counts only for the run the slot is
//! on, which drops what a worker says about a job or a dispatch it has already been moved off.

use super::controller::nonce_ranges;

/// A worker's report on a run (worker.js `progress`, `stopped`, `done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Still searching; hashes and position so far.
    Progress,
    /// Told to stop before the end of its part.
    Stopped,
    /// Searched to the end of its part.
    Done,
}

/// What to send a worker: search `start..end` (nonce positions, `end` exclusive) as run `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    pub run: u32,
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    /// A worker runs in this slot (the scaling probe decides how many do).
    running: bool,
    /// Its worker has loaded the kernel.
    ready: bool,
    /// Next nonce position to search, and the end of the part (exclusive).
    cursor: u64,
    end: u64,
    /// The run whose reports count; 0 when idle.
    run: u32,
    exhausted: bool,
}

/// The worker slots of one client: as many as the consent dialog promised workers (none before the
/// first job).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    parts: Vec<Part>,
    /// The last run number handed out.
    last_run: u32,
}

impl Parts {
    /// `slots` slots, none running, each on its part of a fresh job.
    pub fn new(slots: u32) -> Parts {
        let parts = nonce_ranges(slots)
            .into_iter()
            .map(|(start, end)| Part {
                running: false,
                ready: false,
                cursor: start.into(),
                end,
                run: 0,
                exhausted: false,
            })
            .collect();
        Parts { parts, last_run: 0 }
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// A new job: every slot starts over on its own part of the fresh nonce space.
    pub fn new_job(&mut self) {
        let slots = self.parts.len() as u32;
        for (part, (start, end)) in self.parts.iter_mut().zip(nonce_ranges(slots)) {
            (part.cursor, part.end, part.exhausted, part.run) = (start.into(), end, false, 0);
        }
    }

    /// A worker started in slot `index`; it is ready once it has loaded the kernel.
    pub fn started(&mut self, index: usize) {
        if let Some(part) = self.parts.get_mut(index) {
            (part.running, part.ready, part.run) = (true, false, 0);
        }
    }

    /// The worker of slot `index` was ended (its part of the current job goes unsearched: the next
    /// job splits the space again).
    pub fn ended(&mut self, index: usize) {
        if let Some(part) = self.parts.get_mut(index) {
            (part.running, part.ready, part.run) = (false, false, 0);
        }
    }

    pub fn ready(&mut self, index: usize) {
        if let Some(part) = self.parts.get_mut(index) {
            part.ready = part.running;
        }
    }

    /// A new run for slot `index`, from its cursor to the end of its part, if its worker is ready and
    /// the part is not searched through.
    pub fn dispatch(&mut self, index: usize) -> Option<Dispatch> {
        let part = self.parts.get_mut(index)?;
        if !part.running || !part.ready || part.exhausted || part.cursor >= part.end {
            return None;
        }
        self.last_run += 1;
        part.run = self.last_run;
        Some(Dispatch { run: part.run, start: part.cursor, end: part.end })
    }

    /// The workers were told to stop: nothing they report from now counts until the next dispatch.
    pub fn pause(&mut self) {
        self.parts.iter_mut().for_each(|part| part.run = 0);
    }

    /// Slot `index` reports `report` on `run`; `same_job`: the report is about the current job, and
    /// `position` is how far it got. Returns whether the report is about the current run (the only
    /// one whose end matters).
    pub fn report(
        &mut self,
        index: usize,
        same_job: bool,
        run: u32,
        report: Report,
        position: Option<u64>,
    ) -> bool {
        let Some(part) = self.parts.get_mut(index) else { return false };
        if same_job && let Some(position) = position {
            part.cursor = part.cursor.max(position.min(part.end));
        }
        let current = same_job && run != 0 && part.run == run;
        if current && report != Report::Progress {
            part.run = 0;
            part.exhausted = report == Report::Done;
        }
        current
    }

    /// Every slot is done with the current job: searched its whole part, or runs no worker.
    pub fn all_finished(&self) -> bool {
        self.parts.iter().all(|part| !part.running || part.exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn two_ready() -> Parts {
        let mut parts = Parts::new(2);
        for index in 0..2 {
            parts.started(index);
            parts.ready(index);
        }
        parts
    }

    #[test]
    fn only_a_ready_running_worker_gets_its_own_part() {
        let mut parts = Parts::new(2);
        assert_eq!(parts.dispatch(0), None, "no worker runs in the slot");
        parts.started(0);
        assert_eq!(parts.dispatch(0), None, "the worker has not loaded the kernel");
        parts.ready(0);
        parts.ready(1);
        assert_eq!(parts.dispatch(0), Some(Dispatch { run: 1, start: 0, end: 1 << 31 }));
        assert_eq!(parts.dispatch(1), None, "ready without a running worker is not ready");
        assert_eq!(parts.dispatch(7), None);
    }

    #[test]
    fn a_resumed_worker_carries_on_where_it_stopped() {
        let mut parts = two_ready();
        let first = parts.dispatch(1).unwrap();
        assert_eq!(first.start, 1 << 31);
        assert!(parts.report(1, true, first.run, Report::Progress, Some(first.start + 500)));
        parts.pause();
        assert!(
            !parts.report(1, true, first.run, Report::Stopped, Some(first.start + 800)),
            "paused: not current"
        );
        let again = parts.dispatch(1).unwrap();
        assert_eq!((again.start, again.end), (first.start + 800, 1 << 32));
        assert!(again.run > first.run);
    }

    #[test]
    fn reports_of_an_old_run_or_job_do_not_count() {
        let mut parts = two_ready();
        let old = parts.dispatch(0).unwrap();
        let new = parts.dispatch(0).unwrap();
        assert!(!parts.report(0, true, old.run, Report::Done, Some(100)), "superseded run");
        assert!(!parts.all_finished(), "its end is not the part's end");
        assert!(!parts.report(0, false, new.run, Report::Done, Some(1 << 30)), "another job");
        assert!(!parts.all_finished());
        assert_eq!(parts.dispatch(0).unwrap().start, 100, "only the current job's positions move the cursor");
    }

    #[test]
    fn the_job_is_exhausted_when_every_running_worker_is_done() {
        let mut parts = two_ready();
        let a = parts.dispatch(0).unwrap();
        let b = parts.dispatch(1).unwrap();
        assert!(parts.report(0, true, a.run, Report::Done, Some(a.end)));
        assert!(!parts.all_finished());
        assert!(parts.report(1, true, b.run, Report::Done, Some(b.end)));
        assert!(parts.all_finished());
        assert_eq!(parts.dispatch(0), None, "nothing left of its part");
        parts.new_job();
        assert_eq!(parts.dispatch(0).map(|d| (d.start, d.end)), Some((0, 1 << 31)), "a new job starts over");
    }

    #[test]
    fn a_slot_without_a_worker_does_not_hold_the_job_open() {
        let mut parts = two_ready();
        parts.ended(1);
        let a = parts.dispatch(0).unwrap();
        assert!(parts.report(0, true, a.run, Report::Done, Some(a.end)));
        assert!(parts.all_finished());
        assert!(!parts.report(0, true, a.run, Report::Done, Some(a.end)), "a run ends once");
    }
}
