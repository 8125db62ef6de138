//! The browser layer of the SDK (wasm32 only): it performs what the pure [`Controller`],
//! [`policy::decide`] and the other decisions of `client/` say, with web-sys. The JS loader
//! (`www/sdk/client.js`) creates a [`Client`] only after the visitor said yes; [`Client::stop`]
//! (revocation) ends everything at once.
//!
//! One file per thing it drives: `options` (the `MinePass.init` options and reading JS objects),
//! `tab_lock` (one tab mines), `page` (visibility, battery, the app host's facts), `budget` (the
//! daily budget in `localStorage`), `socket` (the broker connection), `workers` (the web workers).
//! This file holds the client and its one loop: every second, and whenever a fact changes, gather
//! the facts, let the policy decide, and act.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;

use crate::client::budget::DailyBudget;
use crate::client::controller::{Command, Controller, Event};
use crate::client::policy::{self, Facts, PauseReason};
use crate::client::scaling::Scaling;
use crate::protocol::ClientMessage;

mod budget;
mod options;
mod page;
mod socket;
mod tab_lock;
mod workers;

use options::{Options, set};

/// How often the client re-evaluates its policy, charges the budget and reports progress.
const TICK_MS: u32 = 1000;
/// Keep-alive interval, under the usual 60 s idle timeout of proxies.
const PING_EVERY_MS: f64 = 25_000.0;

/// A DOM event listener kept alive while registered.
type Listener = Closure<dyn FnMut(JsValue)>;

/// The SDK's client for one site in one tab.
#[wasm_bindgen]
pub struct Client {
    inner: Rc<Inner>,
}

struct Inner {
    options: Options,
    on_event: Function,
    /// Injectable clock (tests); `Date.now()` otherwise.
    clock: Option<Function>,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    controller: Option<Controller>,
    lock: tab_lock::TabLock,
    page: page::Page,
    connection: socket::Connection,
    workers: workers::Workers,
    budget: Option<DailyBudget>,
    /// When the budget was last charged.
    last_tick: f64,
    tick: Option<Interval>,
    /// The last decision reported to the page (`None`: mining).
    paused: Option<Option<PauseReason>>,
    /// Revoked or refused for good: nothing more happens.
    stopped: bool,
}

#[wasm_bindgen]
impl Client {
    /// `options`: see [`Options`]; `on_event(type, detail)` receives every event; `clock` (optional)
    /// returns the time in Unix ms (tests inject it; `Date.now` otherwise).
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, on_event: Function, clock: Option<Function>) -> Result<Client, JsError> {
        let options = Options::from_js(&options)?;
        let mut state =
            State { controller: Some(Controller::new(options.identity.clone())), ..State::default() };
        state.workers.scaling = Scaling::new(options.identity.threads);
        let inner = Rc::new(Inner { options, on_event, clock, state: RefCell::new(state) });
        Ok(Client { inner })
    }

    /// Starts: waits for the site's tab lock, then connects and mines within the limits.
    pub fn start(&self) {
        let inner = &self.inner;
        if inner.state.borrow().tick.is_some() || inner.state.borrow().stopped {
            return;
        }
        inner.state.borrow_mut().last_tick = inner.now();
        inner.request_tab_lock();
        inner.watch_page();
        let weak = Rc::downgrade(inner);
        let tick = Interval::new(TICK_MS, move || {
            if let Some(inner) = weak.upgrade() {
                inner.tick();
            }
        });
        inner.state.borrow_mut().tick = Some(tick);
        inner.evaluate();
    }

    /// Stops everything at once (revocation): workers are terminated, the socket closed, the tab lock
    /// released. The client cannot be started again; the loader makes a new one after a new consent.
    pub fn stop(&self) {
        self.inner.shutdown();
    }

    /// What the app host reports (docs/HOST.md): `{charging, level, thermal, metered}`, each `null`
    /// when the host does not say. Applied at once.
    #[wasm_bindgen(js_name = hostFacts)]
    pub fn host_facts(&self, facts: JsValue) {
        self.inner.set_host_facts(&facts);
        self.inner.evaluate();
    }

    /// Every hash done since start.
    #[wasm_bindgen(getter)]
    pub fn hashes(&self) -> f64 {
        self.inner.hashes() as f64
    }

    /// Milliseconds the workers spent hashing since start, summed over workers.
    #[wasm_bindgen(getter, js_name = busyMs)]
    pub fn busy_ms(&self) -> f64 {
        self.inner.state.borrow().workers.busy_ms
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}

impl Inner {
    fn now(&self) -> f64 {
        match &self.clock {
            Some(clock) => {
                clock.call0(&JsValue::NULL).ok().and_then(|v| v.as_f64()).unwrap_or_else(js_sys::Date::now)
            }
            None => js_sys::Date::now(),
        }
    }

    fn emit(&self, kind: &str, detail: &JsValue) {
        if let Err(error) = self.on_event.call2(&JsValue::NULL, &JsValue::from_str(kind), detail) {
            web_sys::console::error_2(&"MinePass event handler failed".into(), &error);
        }
    }

    fn emit_event(&self, event: &Event) {
        let detail = js_sys::JSON::parse(&event.to_json()).unwrap_or(JsValue::NULL);
        let kind = Reflect::get(&detail, &"type".into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
        self.emit(&kind, &detail);
    }

    fn storage(&self) -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok().flatten()
    }

    /// This site's `localStorage` key (and Web Locks name) for `what`.
    fn key(&self, what: &str) -> String {
        let mut key = String::from("minepass.");
        key.push_str(&self.options.identity.site);
        key.push('.');
        key.push_str(what);
        key
    }

    fn with_controller<T: Default>(&self, f: impl FnOnce(&mut Controller) -> T) -> T {
        self.state.borrow_mut().controller.as_mut().map(f).unwrap_or_default()
    }

    fn tick(self: &Rc<Self>) {
        if self.state.borrow().stopped {
            return;
        }
        if self.now() >= self.options.identity.consent.expires_at as f64 {
            self.emit_event(&Event::Error {
                code: "consent_expired".into(),
                message: "the visitor's consent has expired".into(),
                fatal: true,
            });
            self.shutdown();
            return;
        }
        if self.state.borrow().lock.uses_lease {
            self.renew_lease();
        }
        // The scaling probe measures real time (the injected clock is the visitor's calendar).
        let hashes = self.hashes();
        let (scaled, newly_settled) = {
            let mut state = self.state.borrow_mut();
            let workers = &mut state.workers;
            let was_settled = workers.scaling.settled();
            let scaled =
                if workers.mining { workers.scaling.observe(js_sys::Date::now(), hashes) } else { None };
            (scaled, !was_settled && workers.scaling.settled())
        };
        if scaled.is_some() {
            self.apply_worker_count();
        } else if newly_settled {
            self.emit_workers();
        }
        let now = self.now();
        let ping = {
            let mut state = self.state.borrow_mut();
            let open = state.controller.as_ref().is_some_and(Controller::is_open);
            let due = open && now - state.connection.last_ping >= PING_EVERY_MS;
            if due {
                state.connection.last_ping = now;
            }
            due
        };
        if ping {
            self.send(&ClientMessage::Ping { t: now as u64 });
        }
        self.evaluate();
        let progress = {
            let state = self.state.borrow();
            state.workers.mining.then(|| state.controller.as_ref().and_then(Controller::progress)).flatten()
        };
        if let Some(progress) = progress {
            self.emit_event(&progress);
        }
    }

    /// Charges the budget for the time mined since the last call, applies the policy, and starts or
    /// pauses the workers and the connection accordingly.
    fn evaluate(self: &Rc<Self>) {
        if self.state.borrow().stopped {
            return;
        }
        let budget_left_ms = self.charge_budget(self.now());
        let facts = {
            let state = self.state.borrow();
            let host = state.page.host;
            Facts {
                holds_tab_lock: state.lock.held,
                budget_left_ms,
                save_data: page::save_data(),
                metered: host.metered.unwrap_or(false),
                hot: host.hot(),
                power: host.power(state.page.power),
                visible: page::visible(),
                connected: state.controller.as_ref().is_some_and(Controller::is_open),
                has_work: state.workers.job.is_some(),
            }
        };
        let decision = policy::decide(&self.options.limits, &facts);
        if policy::wants_connection(&facts) {
            self.ensure_socket();
        } else {
            self.close_socket();
        }
        match decision {
            Ok(()) => self.mine(),
            Err(_) => self.pause_workers(),
        }
        let report = decision.err();
        if self.state.borrow_mut().paused.replace(report) == Some(report) {
            return;
        }
        match report {
            None => self.emit("start", &JsValue::NULL),
            Some(reason) => {
                let detail = js_sys::Object::new();
                set(&detail, "reason", reason.as_str().into());
                self.emit("pause", &detail);
            }
        }
    }

    fn perform(self: &Rc<Self>, commands: Vec<Command>) {
        for command in commands {
            if self.state.borrow().stopped {
                return;
            }
            match command {
                Command::Send(message) => self.send(&message),
                Command::Mine(job) => {
                    let mining = {
                        let mut state = self.state.borrow_mut();
                        state.workers.new_job(job);
                        state.connection.healthy();
                        state.workers.mining
                    };
                    // Mining already: move the workers to the new job now; else the policy decides.
                    if mining {
                        self.dispatch_all();
                    } else {
                        self.evaluate();
                    }
                }
                Command::Wait => {
                    self.state.borrow_mut().workers.job = None;
                    self.pause_workers();
                    self.evaluate();
                }
                Command::Emit(event) => self.emit_event(&event),
                Command::Shutdown => self.shutdown(),
            }
        }
    }

    /// Ends everything now: terminate workers, close the socket, release the lock, drop timers.
    fn shutdown(&self) {
        {
            let mut state = self.state.borrow_mut();
            if std::mem::replace(&mut state.stopped, true) {
                return;
            }
            state.tick = None;
            state.connection.cancel_reconnect();
            state.workers.terminate();
        }
        self.close_socket();
        self.release_tab_lock();
        self.remove_page_listeners();
        self.emit("stop", &JsValue::NULL);
    }
}
