//! The web workers: started and ended as the scaling probe says, sent their parts of the job, and
//! heard from. Which part and which report counts is [`Parts`]'s to decide.

use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, Worker, WorkerOptions, WorkerType};

use super::Inner;
use super::options::{Fields, set};
use crate::client::controller::{Controller, Event};
use crate::client::parts::{Parts, Report};
use crate::client::scaling::Scaling;
use crate::protocol;

/// The workers' state.
#[derive(Default)]
pub(super) struct Workers {
    /// Per slot of `parts`: its worker, when one runs there.
    running: Vec<Option<RunningWorker>>,
    parts: Parts,
    /// The job being searched (none between jobs, or while disconnected).
    pub job: Option<protocol::Job>,
    /// Whether the workers are searching now.
    pub mining: bool,
    /// How many workers run: measured, up to the promised number.
    pub scaling: Scaling,
    /// Milliseconds the workers spent hashing (the throttle's duty cycle is this over wall time).
    pub busy_ms: f64,
    /// The `hashing` event (the first hash) was emitted.
    hashing: bool,
}

struct RunningWorker {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Workers {
    /// A new job: every worker starts over on its own part of the fresh nonce space.
    pub fn new_job(&mut self, job: protocol::Job) {
        self.job = Some(job);
        self.parts.new_job();
    }

    /// Ends every worker now.
    pub fn terminate(&mut self) {
        self.mining = false;
        for running in self.running.drain(..).flatten() {
            running.worker.terminate();
        }
    }
}

impl Inner {
    pub(super) fn mine(self: &Rc<Self>) {
        if self.state.borrow().workers.job.is_none() {
            return;
        }
        self.ensure_workers();
        let was_mining = std::mem::replace(&mut self.state.borrow_mut().workers.mining, true);
        if !was_mining {
            self.dispatch_all();
        }
    }

    fn ensure_workers(self: &Rc<Self>) {
        {
            let mut state = self.state.borrow_mut();
            if !state.workers.parts.is_empty() {
                return;
            }
            let threads = self.options.identity.threads;
            state.workers.parts = Parts::new(threads);
            state.workers.running = (0..threads).map(|_| None).collect();
        }
        self.apply_worker_count();
    }

    /// Runs workers in as many slots as the scaling probe says and ends the others'.
    pub(super) fn apply_worker_count(self: &Rc<Self>) {
        let (slots, count) = {
            let state = self.state.borrow();
            (state.workers.running.len(), state.workers.scaling.active() as usize)
        };
        for index in 0..slots {
            let running = self.state.borrow().workers.running[index].is_some();
            if index < count && !running {
                self.start_worker(index);
            } else if index >= count && running {
                let mut state = self.state.borrow_mut();
                if let Some(running) = state.workers.running[index].take() {
                    running.worker.terminate();
                }
                state.workers.parts.ended(index);
            }
        }
        self.with_controller(|c| c.on_worker_count(count));
        self.emit_workers();
    }

    /// The `workers` event: how many run, the ceiling, and whether the probe has settled.
    pub(super) fn emit_workers(&self) {
        let (count, settled) = {
            let state = self.state.borrow();
            (state.workers.scaling.active(), state.workers.scaling.settled())
        };
        let detail = js_sys::Object::new();
        set(&detail, "count", count.into());
        set(&detail, "max", self.options.identity.threads.into());
        set(&detail, "settled", settled.into());
        self.emit("workers", &detail);
    }

    fn start_worker(self: &Rc<Self>, index: usize) {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let Ok(worker) = Worker::new_with_options(&self.options.worker_url, &options) else {
            self.emit_event(&Event::Error {
                code: "worker_failed".into(),
                message: "a web worker could not be started".into(),
                fatal: false,
            });
            return;
        };
        let weak = Rc::downgrade(self);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(inner) = weak.upgrade() {
                inner.on_worker_message(index, &event.data());
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let init = js_sys::Object::new();
        set(&init, "type", "init".into());
        set(&init, "build", self.options.build.as_str().into());
        let _ = worker.post_message(&init);
        let mut state = self.state.borrow_mut();
        state.workers.running[index] = Some(RunningWorker { worker, _on_message: on_message });
        state.workers.parts.started(index);
    }

    /// Sends every ready worker its part of the current job.
    pub(super) fn dispatch_all(self: &Rc<Self>) {
        let slots = self.state.borrow().workers.running.len();
        for index in 0..slots {
            self.dispatch(index);
        }
    }

    fn dispatch(self: &Rc<Self>, index: usize) {
        let mut state = self.state.borrow_mut();
        let workers = &mut state.workers;
        let (true, Some(job)) = (workers.mining, &workers.job) else { return };
        let (Ok(header), Ok(target)) = (hex_bytes(&job.header), hex_bytes(&job.target)) else { return };
        let Some(dispatch) = workers.parts.dispatch(index) else { return };
        let message = js_sys::Object::new();
        set(&message, "type", "mine".into());
        set(&message, "job", job.id.as_str().into());
        set(&message, "run", dispatch.run.into());
        set(&message, "header", js_sys::Uint8Array::from(header.as_slice()).into());
        set(&message, "target", js_sys::Uint8Array::from(target.as_slice()).into());
        set(&message, "start", (dispatch.start as f64).into());
        set(&message, "end", (dispatch.end as f64).into());
        set(&message, "throttle", self.options.throttle.into());
        if let Some(Some(running)) = workers.running.get(index) {
            let _ = running.worker.post_message(&message);
        }
    }

    pub(super) fn pause_workers(&self) {
        let mut state = self.state.borrow_mut();
        let workers = &mut state.workers;
        if !std::mem::replace(&mut workers.mining, false) {
            return;
        }
        workers.scaling.paused();
        workers.parts.pause();
        let stop = js_sys::Object::new();
        set(&stop, "type", "stop".into());
        for running in workers.running.iter().flatten() {
            let _ = running.worker.post_message(&stop);
        }
    }

    fn on_worker_message(self: &Rc<Self>, index: usize, data: &JsValue) {
        if self.state.borrow().stopped {
            return;
        }
        let fields = Fields(data);
        let kind = fields.string("type").unwrap_or_default();
        let job = fields.string("job").unwrap_or_default();
        let report = match kind.as_str() {
            "ready" => {
                self.state.borrow_mut().workers.parts.ready(index);
                self.dispatch(index);
                return;
            }
            "found" => {
                let nonces = fields.get("nonces");
                for nonce in js_sys::Array::from(&nonces).iter().filter_map(|n| n.as_f64()) {
                    let commands = self.with_controller(|c| c.on_found(&job, nonce as u32));
                    self.perform(commands);
                }
                return;
            }
            "error" => {
                let message = fields.string("message").unwrap_or_default();
                self.emit_event(&Event::Error { code: "worker_failed".into(), message, fatal: false });
                return;
            }
            "progress" => Report::Progress,
            "stopped" => Report::Stopped,
            "done" => Report::Done,
            _ => return,
        };
        let hashes = fields.number("hashes").unwrap_or(0.0) as u64;
        let ms = fields.number("ms").unwrap_or(0.0);
        self.state.borrow_mut().workers.busy_ms += fields.number("busy").unwrap_or(0.0);
        if hashes > 0 {
            self.with_controller(|c| c.on_hashes(index, hashes, ms));
            if !std::mem::replace(&mut self.state.borrow_mut().workers.hashing, true) {
                self.emit("hashing", &JsValue::NULL);
            }
        }
        let run = fields.number("run").unwrap_or(0.0) as u32;
        let position = fields.number("position").map(|p| p as u64);
        let exhausted = {
            let mut state = self.state.borrow_mut();
            let workers = &mut state.workers;
            let same_job = workers.job.as_ref().is_some_and(|j| j.id == job);
            let current = workers.parts.report(index, same_job, run, report, position);
            current && report == Report::Done && workers.parts.all_finished()
        };
        if exhausted {
            let commands = self.with_controller(|c| c.on_exhausted(&job));
            self.perform(commands);
        }
    }

    /// Every hash done since start.
    pub(super) fn hashes(&self) -> u64 {
        self.state.borrow().controller.as_ref().map_or(0, Controller::hashes)
    }
}

fn hex_bytes(text: &str) -> Result<Vec<u8>, ()> {
    // Over bytes, not `&str` slices: slicing a string brings in its char-boundary panic machinery.
    let nibble = |b: u8| char::from(b).to_digit(16).ok_or(());
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return Err(());
    }
    bytes.chunks_exact(2).map(|pair| Ok((nibble(pair[0])? * 16 + nibble(pair[1])?) as u8)).collect()
}
