//! The browser layer of the SDK (wasm32 only): it owns the WebSocket, the workers, the tab lock, the
//! budget in `localStorage`, and the page's visibility and battery, and it performs what the pure
//! [`Controller`] and [`policy::decide`] say. The JS loader (`www/minepass.js`) creates a [`Client`] only
//! after the visitor said yes; [`Client::stop`] (revocation) ends everything at once.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::{Interval, Timeout};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, VisibilityState, WebSocket, Worker, WorkerOptions, WorkerType};

use super::backoff::Backoff;
use super::budget::{DailyBudget, local_day};
use super::controller::{Command, Controller, Event, Identity, nonce_ranges};
use super::policy::{self, Battery, Facts, HostFacts, Limits, PauseReason, Power, Thermal};
use super::scaling::Scaling;
use crate::protocol::{self, ClientMessage, Consent, Frame, FrameKey, FrameProgress, ServerMessage};

/// `MinePass.init` options as the loader passes them (camelCase, like the JS API).
#[derive(Debug)]
struct Options {
    /// `ws(s)://…/ws` of the broker.
    broker: String,
    /// URL of `worker.js`.
    worker_url: String,
    /// `"simd"` or `"plain"`: the wasm build the workers load.
    build: String,
    site: String,
    /// A publisher-vouched id (with `user_proof`) or a broker-issued anonymous one (with
    /// `user_secret`); none for a new anonymous visitor.
    user: Option<String>,
    user_proof: Option<String>,
    user_secret: Option<String>,
    content: Option<String>,
    consent: Consent,
    /// The most workers to run: the number the consent dialog promised (the loader's `threads()`, its
    /// one source); the scaling probe decides how many of them the device sustains.
    threads: u32,
    /// Idle share of time, 0 ≤ throttle < 1.
    throttle: f64,
    /// Mining minutes per local day.
    daily_minutes: f64,
    require_charging: bool,
    respect_save_data: bool,
    /// Proof of work only (`hello.gate_only`).
    gate_only: bool,
    /// The device class the loader reports (`support.js` `deviceClass`).
    engine: Option<String>,
    cores: Option<u32>,
}

/// Reads fields of a JS object. (By hand rather than with serde: serde's deserialisers and their
/// error formatting would triple the size of this module.)
struct Fields<'a>(&'a JsValue);

impl Fields<'_> {
    fn get(&self, key: &str) -> JsValue {
        Reflect::get(self.0, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key).as_string()
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.get(key).as_f64()
    }

    /// A non-negative integer that fits `u64` exactly (JS numbers are exact up to 2^53).
    fn integer(&self, key: &str) -> Option<u64> {
        self.number(key)
            .filter(|n| n.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(n))
            .map(|n| n as u64)
    }

    fn boolean(&self, key: &str) -> Option<bool> {
        self.get(key).as_bool()
    }
}

impl Options {
    fn from_js(value: &JsValue) -> Result<Options, JsError> {
        let fields = Fields(value);
        let required = |key: &str| fields.string(key).ok_or_else(|| invalid(key));
        let consent = fields.get("consent");
        let consent = Fields(&consent);
        let options = Options {
            broker: required("broker")?,
            worker_url: required("workerUrl")?,
            build: required("build")?,
            site: required("site")?,
            user: fields.string("user"),
            user_proof: fields.string("userProof"),
            user_secret: fields.string("userSecret"),
            content: fields.string("content"),
            consent: Consent {
                id: consent.string("id").ok_or_else(|| invalid("consent.id"))?,
                given_at: consent.integer("given_at").ok_or_else(|| invalid("consent.given_at"))?,
                expires_at: consent.integer("expires_at").ok_or_else(|| invalid("consent.expires_at"))?,
            },
            threads: fields
                .integer("threads")
                .filter(|n| (1..=MAX_THREADS).contains(n))
                .ok_or_else(|| invalid("threads (1-256)"))? as u32,
            throttle: fields.number("throttle").unwrap_or(0.0),
            daily_minutes: fields.number("dailyMinutes").unwrap_or(30.0),
            require_charging: fields.boolean("requireCharging").unwrap_or(false),
            respect_save_data: fields.boolean("respectSaveData").unwrap_or(true),
            gate_only: fields.boolean("gateOnly").unwrap_or(false),
            engine: fields.string("engine"),
            cores: fields.integer("cores").and_then(|n| u32::try_from(n).ok()),
        };
        if !(0.0..1.0).contains(&options.throttle) {
            return Err(invalid("throttle (0 <= throttle < 1)"));
        }
        if options.daily_minutes.is_nan() || options.daily_minutes < 0.0 {
            return Err(invalid("dailyMinutes (>= 0)"));
        }
        Ok(options)
    }
}

fn invalid(key: &str) -> JsError {
    JsError::new(&["MinePass options: missing or invalid ", key].concat())
}

/// The entries of a JS array field, each read by `entry`; `None` if it is not an array.
fn array_of<T>(value: &JsValue, entry: impl Fn(&Fields) -> T) -> Option<Vec<T>> {
    js_sys::Array::is_array(value)
        .then(|| js_sys::Array::from(value).iter().map(|e| entry(&Fields(&e))).collect())
}

/// A broker message from its JSON text: `JSON.parse`, then the protocol's own checks.
fn server_message(text: &str) -> Option<ServerMessage> {
    let value = js_sys::JSON::parse(text).ok()?;
    let f = Fields(&value);
    let progress = array_of(&f.get("progress"), |p| FrameProgress {
        content: p.string("content"),
        done: p.string("done"),
        required: p.string("required"),
    });
    let frame = Frame {
        kind: f.string("type")?,
        v: f.integer("v").map(|n| n as u32),
        session: f.string("session"),
        resume: f.string("resume"),
        mode: f.string("mode"),
        share_interval_ms: f.integer("share_interval_ms"),
        progress,
        id: f.string("id"),
        header: f.string("header"),
        target: f.string("target"),
        work: f.string("work"),
        job: f.string("job"),
        nonce: f.string("nonce"),
        code: f.string("code"),
        content: f.string("content"),
        done: f.string("done"),
        required: f.string("required"),
        token: f.string("token"),
        message: f.string("message"),
        fatal: f.boolean("fatal"),
        t: f.integer("t"),
        reason: f.string("reason"),
        credits: f.string("credits"),
        user: f.string("user"),
        user_secret: f.string("user_secret"),
        keys: array_of(&f.get("keys"), |k| FrameKey {
            version: k.integer("version").and_then(|n| u32::try_from(n).ok()),
            key: k.string("key"),
        }),
    };
    ServerMessage::try_from(frame).ok()
}

/// How often the client re-evaluates its policy, charges the budget and reports progress.
const TICK_MS: u32 = 1000;
/// Keep-alive interval, under the usual 60 s idle timeout of proxies.
const PING_EVERY_MS: f64 = 25_000.0;
/// Most time one evaluation charges to the budget.
const MAX_CHARGE_MS: f64 = 5000.0;
/// The fallback tab lease (no Web Locks): renewed every tick, taken over when older than this.
const LEASE_MS: f64 = 5000.0;
/// The most workers a client runs, whatever the page asks (a sanity bound, not a target).
const MAX_THREADS: u64 = 256;

/// A DOM event listener kept alive while registered.
type Listener = Closure<dyn FnMut(JsValue)>;

/// The SDK's client for one site in one tab.
#[wasm_bindgen]
pub struct Client {
    inner: Rc<Inner>,
}

struct Inner {
    options: Options,
    limits: Limits,
    threads: u32,
    on_event: Function,
    /// Injectable clock (tests); `Date.now()` otherwise.
    clock: Option<Function>,
    state: RefCell<State>,
}

/// One part of the nonce space and the worker searching it, if it runs (the scaling probe decides
/// how many do).
struct WorkerSlot {
    worker: Option<RunningWorker>,
    ready: bool,
    /// Nonce positions of the current job: next to search and end (exclusive).
    cursor: u64,
    end: u64,
    /// The run (see worker.js) whose reports count; 0 when idle.
    run: u32,
    exhausted: bool,
}

struct RunningWorker {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl WorkerSlot {
    /// Done with the current job: searched its whole part, or not running.
    fn finished(&self) -> bool {
        self.worker.is_none() || self.exhausted
    }
}

#[derive(Default)]
struct State {
    controller: Option<Controller>,
    socket: Option<WebSocket>,
    socket_handlers: Vec<Listener>,
    workers: Vec<WorkerSlot>,
    job: Option<protocol::Job>,
    next_run: u32,
    /// Whether the workers are searching now.
    mining: bool,
    /// The last decision reported to the page (`None`: mining).
    paused: Option<Option<PauseReason>>,
    holds_lock: bool,
    /// Resolves the Web Locks request's promise, which releases the lock.
    release_lock: Option<Function>,
    /// No Web Locks here: the tab lock is the localStorage lease, renewed every tick.
    uses_lease: bool,
    lease_owner: String,
    /// The browser's power facts (Battery API); `host` may know better.
    power: Power,
    host: HostFacts,
    budget: Option<DailyBudget>,
    last_tick: f64,
    last_ping: f64,
    backoff: Option<Backoff>,
    reconnect: Option<Timeout>,
    tick: Option<Interval>,
    document_handlers: Vec<(String, Listener)>,
    /// The `hashing` event (the first hash) was emitted.
    hashing: bool,
    /// Milliseconds the workers spent hashing (the throttle's duty cycle is this over wall time).
    busy_ms: f64,
    /// Revoked or refused for good: nothing more happens.
    stopped: bool,
    /// How many workers run: measured, up to `threads`.
    scaling: Scaling,
}

#[wasm_bindgen]
impl Client {
    /// `options`: see [`Options`]; `on_event(type, detail)` receives every event; `clock` (optional)
    /// returns the time in Unix ms (tests inject it; `Date.now` otherwise).
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, on_event: Function, clock: Option<Function>) -> Result<Client, JsError> {
        let options = Options::from_js(&options)?;
        let threads = options.threads;
        let limits = Limits {
            require_charging: options.require_charging,
            respect_save_data: options.respect_save_data,
            ..Limits::default()
        };
        let identity = Identity {
            site: options.site.clone(),
            user: options.user.clone(),
            user_proof: options.user_proof.clone(),
            user_secret: options.user_secret.clone(),
            content: options.content.clone(),
            consent: options.consent.clone(),
            threads,
            simd: options.build == "simd",
            gate_only: options.gate_only,
            engine: options.engine.clone(),
            cores: options.cores,
        };
        let state = State {
            controller: Some(Controller::new(identity)),
            backoff: Some(Backoff::new(1000, 60_000)),
            lease_owner: format!("{:x}", (js_sys::Math::random() * 2f64.powi(52)) as u64),
            scaling: Scaling::new(threads),
            ..State::default()
        };
        let inner = Rc::new(Inner { options, limits, threads, on_event, clock, state: RefCell::new(state) });
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
        let fields = Fields(&facts);
        let host = HostFacts {
            charging: fields.boolean("charging"),
            level: fields.number("level").filter(|l| (0.0..=1.0).contains(l)),
            thermal: fields.string("thermal").as_deref().and_then(Thermal::parse),
            metered: fields.boolean("metered"),
        };
        self.inner.state.borrow_mut().host = host;
        self.inner.evaluate();
    }

    /// Every hash done since start.
    #[wasm_bindgen(getter)]
    pub fn hashes(&self) -> f64 {
        self.inner.state.borrow().controller.as_ref().map_or(0, Controller::hashes) as f64
    }

    /// Milliseconds the workers spent hashing since start, summed over workers.
    #[wasm_bindgen(getter, js_name = busyMs)]
    pub fn busy_ms(&self) -> f64 {
        self.inner.state.borrow().busy_ms
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

    fn today(&self) -> i64 {
        let now = self.now();
        let offset = js_sys::Date::new(&JsValue::from_f64(now)).get_timezone_offset();
        local_day(now as i64, offset as i64)
    }

    fn emit(&self, kind: &str, detail: &JsValue) {
        if let Err(error) = self.on_event.call2(&JsValue::NULL, &JsValue::from_str(kind), detail) {
            web_sys::console::error_2(&"MinePass event handler failed".into(), &error);
        }
    }

    fn emit_event(&self, event: &Event) {
        let detail = serde_wasm_bindgen::to_value(event).unwrap_or(JsValue::NULL);
        let kind = Reflect::get(&detail, &"type".into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
        self.emit(&kind, &detail);
    }

    fn storage(&self) -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok().flatten()
    }

    fn key(&self, what: &str) -> String {
        format!("minepass.{}.{what}", self.options.site)
    }

    // --- Tab lock: one tab of a site mines at a time. ---

    /// Web Locks where they exist: the request waits while another tab holds the lock and is granted
    /// when that tab closes or stops. Otherwise a lease in localStorage renewed every tick.
    fn request_tab_lock(self: &Rc<Self>) {
        let locks = web_sys::window()
            .and_then(|w| Reflect::get(&w.navigator(), &"locks".into()).ok())
            .filter(|l| !l.is_undefined() && !l.is_null());
        let Some(locks) = locks else {
            self.state.borrow_mut().uses_lease = true;
            self.renew_lease();
            return;
        };
        let weak = Rc::downgrade(self);
        let granted = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
            let Some(inner) = weak.upgrade() else { return Promise::resolve(&JsValue::NULL).into() };
            if inner.state.borrow().stopped {
                return Promise::resolve(&JsValue::NULL).into();
            }
            // Held until this promise resolves: on stop, or when the page goes away.
            let held = Promise::new(&mut |resolve, _reject| {
                inner.state.borrow_mut().release_lock = Some(resolve);
            });
            inner.on_lock_granted();
            held.into()
        });
        let request =
            Reflect::get(&locks, &"request".into()).ok().and_then(|f| f.dyn_into::<Function>().ok());
        if let Some(request) = request {
            let _ = request.call2(&locks, &self.key("lock").into(), &granted);
        }
    }

    fn on_lock_granted(self: &Rc<Self>) {
        {
            let mut state = self.state.borrow_mut();
            state.holds_lock = true;
            // Another tab may have mined today since this one loaded the budget.
            state.budget = None;
        }
        self.evaluate();
    }

    /// The fallback lock: `owner:until` in localStorage, taken when free or expired.
    fn renew_lease(self: &Rc<Self>) {
        let Some(storage) = self.storage() else {
            // No storage at all (some private modes): this tab cannot coordinate, so it mines.
            self.state.borrow_mut().holds_lock = true;
            return;
        };
        let now = self.now();
        let owner = self.state.borrow().lease_owner.clone();
        let current = storage.get_item(&self.key("lease")).ok().flatten();
        let free = match current.as_deref().and_then(|lease| lease.split_once(':')) {
            None => true,
            Some((holder, until)) => {
                holder == owner || until.parse::<u64>().map_or(true, |u| (u as f64) < now)
            }
        };
        if free {
            let lease = format!("{owner}:{}", (now + LEASE_MS) as u64);
            let _ = storage.set_item(&self.key("lease"), &lease);
        }
        let was = std::mem::replace(&mut self.state.borrow_mut().holds_lock, free);
        if free && !was {
            self.state.borrow_mut().budget = None;
        }
    }

    fn release_tab_lock(&self) {
        let (release, had_lock) = {
            let mut state = self.state.borrow_mut();
            (state.release_lock.take(), std::mem::replace(&mut state.holds_lock, false))
        };
        if let Some(release) = release {
            let _ = release.call0(&JsValue::NULL);
        } else if had_lock && let Some(storage) = self.storage() {
            let _ = storage.remove_item(&self.key("lease"));
        }
    }

    // --- Page facts: visibility and battery. ---

    fn watch_page(self: &Rc<Self>) {
        let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
        let weak = Rc::downgrade(self);
        let on_visibility = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.evaluate();
            }
        });
        let _ = document
            .add_event_listener_with_callback("visibilitychange", on_visibility.as_ref().unchecked_ref());
        self.state.borrow_mut().document_handlers.push(("visibilitychange".into(), on_visibility));
        self.watch_battery();
    }

    fn watch_battery(self: &Rc<Self>) {
        let Some(window) = web_sys::window() else { return };
        let navigator = window.navigator();
        let promise = Reflect::get(&navigator, &"getBattery".into())
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
            .and_then(|get_battery| get_battery.call0(&navigator).ok())
            .and_then(|p| p.dyn_into::<Promise>().ok());
        let Some(promise) = promise else {
            self.state.borrow_mut().power = Power::Unknown;
            return;
        };
        self.state.borrow_mut().power = Power::Pending;
        let weak = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            let answer = wasm_bindgen_futures::JsFuture::from(promise).await;
            let Some(inner) = weak.upgrade() else { return };
            let Ok(manager) = answer else {
                // Refused (a permissions policy, say): the browser does not say.
                inner.state.borrow_mut().power = Power::Unknown;
                inner.evaluate();
                return;
            };
            let read = {
                let manager = manager.clone();
                move || Battery {
                    charging: Reflect::get(&manager, &"charging".into())
                        .ok()
                        .and_then(|v| v.as_bool())
                        .unwrap_or(true),
                    level: Reflect::get(&manager, &"level".into())
                        .ok()
                        .and_then(|v| v.as_f64())
                        .unwrap_or(1.0),
                }
            };
            inner.state.borrow_mut().power = Power::Known(read());
            let weak = Rc::downgrade(&inner);
            let on_change = Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.state.borrow_mut().power = Power::Known(read());
                    inner.evaluate();
                }
            });
            if let Ok(target) = manager.dyn_into::<web_sys::EventTarget>() {
                for kind in ["chargingchange", "levelchange"] {
                    let _ = target.add_event_listener_with_callback(kind, on_change.as_ref().unchecked_ref());
                }
            }
            // Lives as long as the page: the battery manager is a per-page singleton.
            on_change.forget();
            inner.evaluate();
        });
    }

    fn visible() -> bool {
        web_sys::window()
            .and_then(|w| w.document())
            .is_none_or(|d| d.visibility_state() == VisibilityState::Visible)
    }

    fn save_data() -> bool {
        web_sys::window()
            .and_then(|w| Reflect::get(&w.navigator(), &"connection".into()).ok())
            .filter(|c| c.is_object())
            .and_then(|c| Reflect::get(&c, &"saveData".into()).ok())
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    // --- The decision loop. ---

    fn tick(self: &Rc<Self>) {
        if self.state.borrow().stopped {
            return;
        }
        if self.now() >= self.options.consent.expires_at as f64 {
            self.emit_event(&Event::Error {
                code: "consent_expired".into(),
                message: "the visitor's consent has expired".into(),
                fatal: true,
            });
            self.shutdown();
            return;
        }
        if self.state.borrow().uses_lease {
            self.renew_lease();
        }
        // The scaling probe measures real time (the injected clock is the visitor's calendar).
        let (scaled, newly_settled) = {
            let mut state = self.state.borrow_mut();
            let hashes = state.controller.as_ref().map_or(0, Controller::hashes);
            let was_settled = state.scaling.settled();
            let scaled = if state.mining { state.scaling.observe(js_sys::Date::now(), hashes) } else { None };
            (scaled, !was_settled && state.scaling.settled())
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
            let due = open && now - state.last_ping >= PING_EVERY_MS;
            if due {
                state.last_ping = now;
            }
            due
        };
        if ping {
            self.send(&ClientMessage::Ping { t: now as u64 });
        }
        self.evaluate();
        let progress = {
            let state = self.state.borrow();
            state.mining.then(|| state.controller.as_ref().and_then(Controller::progress)).flatten()
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
        let now = self.now();
        let today = self.today();
        let limit_ms = (self.options.daily_minutes * 60_000.0) as u64;
        let (holds_lock, connected, host, power, budget_left_ms, has_work) = {
            let mut state = self.state.borrow_mut();
            // Capped: a frozen tab or a clock jump is not time spent mining.
            let elapsed = (now - state.last_tick).clamp(0.0, MAX_CHARGE_MS) as u64;
            state.last_tick = now;
            let holds_lock = state.holds_lock;
            if state.budget.is_none() && holds_lock {
                let stored = self.storage().and_then(|s| s.get_item(&self.key("budget")).ok().flatten());
                state.budget = Some(DailyBudget::from_stored(stored.as_deref(), today));
            }
            let mining = state.mining;
            let left = match state.budget.as_mut() {
                Some(budget) => {
                    if mining {
                        budget.charge(today, elapsed);
                        if let Some(storage) = self.storage() {
                            let _ = storage.set_item(&self.key("budget"), &budget.to_stored());
                        }
                    }
                    budget.remaining_ms(today, limit_ms)
                }
                None => limit_ms,
            };
            let connected = state.controller.as_ref().is_some_and(Controller::is_open);
            (holds_lock, connected, state.host, state.host.power(state.power), left, state.job.is_some())
        };
        let facts = Facts {
            holds_tab_lock: holds_lock,
            budget_left_ms,
            save_data: Self::save_data(),
            metered: host.metered.unwrap_or(false),
            hot: host.hot(),
            power,
            visible: Self::visible(),
            connected,
            has_work,
        };
        let decision = policy::decide(&self.limits, &facts);
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
        let changed = {
            let mut state = self.state.borrow_mut();
            let changed = state.paused != Some(report);
            state.paused = Some(report);
            changed
        };
        if changed {
            match report {
                None => self.emit("start", &JsValue::NULL),
                Some(reason) => {
                    let detail = js_sys::Object::new();
                    let reason = serde_wasm_bindgen::to_value(&reason).unwrap_or(JsValue::NULL);
                    let _ = Reflect::set(&detail, &"reason".into(), &reason);
                    self.emit("pause", &detail);
                }
            }
        }
    }

    // --- The broker connection. ---

    fn ensure_socket(self: &Rc<Self>) {
        {
            let state = self.state.borrow();
            if state.socket.is_some() || state.reconnect.is_some() || state.stopped {
                return;
            }
        }
        let socket = match WebSocket::new(&self.options.broker) {
            Ok(socket) => socket,
            Err(_) => {
                self.schedule_reconnect();
                return;
            }
        };
        let weak = Rc::downgrade(self);
        let on_open = handler(&weak, |inner, _| {
            let commands = inner.with_controller(Controller::on_connected);
            inner.perform(commands);
        });
        let on_message = handler(&weak, |inner, event| {
            let Some(text) = event.dyn_ref::<MessageEvent>().and_then(|e| e.data().as_string()) else {
                return;
            };
            let Some(message) = server_message(&text) else {
                let message = "an unreadable message from the broker".to_owned();
                inner.emit_event(&Event::Error { code: "bad_broker_message".into(), message, fatal: false });
                return;
            };
            let commands = inner.with_controller(|c| c.on_message(message));
            inner.perform(commands);
        });
        let on_close = handler(&weak, |inner, event| {
            let clean = event.dyn_ref::<CloseEvent>().is_some_and(|e| e.code() == 1000);
            inner.on_socket_closed(clean);
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let mut state = self.state.borrow_mut();
        state.socket = Some(socket);
        state.socket_handlers = vec![on_open, on_message, on_close];
    }

    fn on_socket_closed(self: &Rc<Self>, _clean: bool) {
        {
            let mut state = self.state.borrow_mut();
            state.socket = None;
            if let Some(controller) = state.controller.as_mut() {
                controller.on_disconnected();
            }
            state.job = None;
        }
        self.pause_workers();
        if !self.state.borrow().stopped {
            self.schedule_reconnect();
            self.evaluate();
        }
    }

    fn schedule_reconnect(self: &Rc<Self>) {
        let delay = {
            let mut state = self.state.borrow_mut();
            state.backoff.as_mut().map_or(1000, |b| b.next_delay_ms(js_sys::Math::random()))
        };
        let weak = Rc::downgrade(self);
        let timeout = Timeout::new(delay as u32, move || {
            if let Some(inner) = weak.upgrade() {
                inner.state.borrow_mut().reconnect = None;
                inner.evaluate();
            }
        });
        self.state.borrow_mut().reconnect = Some(timeout);
    }

    fn close_socket(&self) {
        let socket = self.state.borrow_mut().socket.take();
        if let Some(socket) = socket {
            socket.set_onclose(None);
            let _ = socket.close_with_code(1000);
            let mut state = self.state.borrow_mut();
            if let Some(controller) = state.controller.as_mut() {
                controller.on_disconnected();
            }
            state.job = None;
            state.socket_handlers.clear();
        }
    }

    fn send(&self, message: &ClientMessage) {
        let text = serde_wasm_bindgen::to_value(message).ok().and_then(|v| js_sys::JSON::stringify(&v).ok());
        if let (Some(socket), Some(text)) = (&self.state.borrow().socket, text)
            && socket.ready_state() == WebSocket::OPEN
        {
            let _ = socket.send_with_str(&String::from(text));
        }
    }

    fn with_controller<T: Default>(&self, f: impl FnOnce(&mut Controller) -> T) -> T {
        self.state.borrow_mut().controller.as_mut().map(f).unwrap_or_default()
    }

    fn perform(self: &Rc<Self>, commands: Vec<Command>) {
        for command in commands {
            if self.state.borrow().stopped {
                return;
            }
            match command {
                Command::Send(message) => self.send(&message),
                Command::Mine(job) => {
                    {
                        let mut state = self.state.borrow_mut();
                        let ranges = nonce_ranges(self.threads);
                        state.job = Some(job);
                        // A new job: every worker starts over on its own part of the fresh space.
                        for (slot, (start, end)) in state.workers.iter_mut().zip(ranges) {
                            (slot.cursor, slot.end, slot.exhausted, slot.run) =
                                (u64::from(start), end, false, 0);
                        }
                        if let Some(backoff) = state.backoff.as_mut() {
                            backoff.reset();
                        }
                    }
                    // Mining already: move the workers to the new job now; else the policy decides.
                    if self.state.borrow().mining {
                        self.dispatch_all();
                    } else {
                        self.evaluate();
                    }
                }
                Command::Wait => {
                    self.state.borrow_mut().job = None;
                    self.pause_workers();
                    self.evaluate();
                }
                Command::Emit(event) => self.emit_event(&event),
                Command::Shutdown => self.shutdown(),
            }
        }
    }

    // --- Workers. ---

    fn mine(self: &Rc<Self>) {
        if self.state.borrow().job.is_none() {
            return;
        }
        self.ensure_workers();
        let was_mining = std::mem::replace(&mut self.state.borrow_mut().mining, true);
        if !was_mining {
            self.dispatch_all();
        }
    }

    fn ensure_workers(self: &Rc<Self>) {
        if !self.state.borrow().workers.is_empty() {
            return;
        }
        let slots = nonce_ranges(self.threads)
            .into_iter()
            .map(|(start, end)| WorkerSlot {
                worker: None,
                ready: false,
                cursor: u64::from(start),
                end,
                run: 0,
                exhausted: false,
            })
            .collect();
        self.state.borrow_mut().workers = slots;
        self.apply_worker_count();
    }

    /// Runs workers in as many slots as the scaling probe says and ends the others' (their parts of
    /// the current job go unsearched: the next job splits the space again).
    fn apply_worker_count(self: &Rc<Self>) {
        let (slots, count) = {
            let state = self.state.borrow();
            (state.workers.len(), state.scaling.active())
        };
        for index in 0..slots {
            let running = self.state.borrow().workers[index].worker.is_some();
            if index < count as usize && !running {
                self.start_worker(index);
            } else if index >= count as usize && running {
                let mut state = self.state.borrow_mut();
                let slot = &mut state.workers[index];
                if let Some(running) = slot.worker.take() {
                    running.worker.terminate();
                }
                (slot.ready, slot.run) = (false, 0);
            }
        }
        self.with_controller(|c| c.on_worker_count(count as usize));
        self.emit_workers();
    }

    /// The `workers` event: how many run, the ceiling, and whether the probe has settled.
    fn emit_workers(&self) {
        let (count, settled) = {
            let state = self.state.borrow();
            (state.scaling.active(), state.scaling.settled())
        };
        let detail = js_sys::Object::new();
        let _ = Reflect::set(&detail, &"count".into(), &count.into());
        let _ = Reflect::set(&detail, &"max".into(), &self.threads.into());
        let _ = Reflect::set(&detail, &"settled".into(), &settled.into());
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
        let _ = Reflect::set(&init, &"type".into(), &"init".into());
        let _ = Reflect::set(&init, &"build".into(), &self.options.build.as_str().into());
        let _ = worker.post_message(&init);
        self.state.borrow_mut().workers[index].worker =
            Some(RunningWorker { worker, _on_message: on_message });
    }

    /// Sends every ready, idle worker its part of the current job.
    fn dispatch_all(self: &Rc<Self>) {
        let count = self.state.borrow().workers.len();
        for index in 0..count {
            self.dispatch(index);
        }
    }

    fn dispatch(self: &Rc<Self>, index: usize) {
        let mut state = self.state.borrow_mut();
        let Some(job) = state.job.clone() else { return };
        if !state.mining {
            return;
        }
        state.next_run += 1;
        let run = state.next_run;
        let Some(slot) = state.workers.get_mut(index) else { return };
        if !slot.ready || slot.exhausted || slot.cursor >= slot.end {
            return;
        }
        slot.run = run;
        let (Ok(header), Ok(target)) = (hex_bytes(&job.header), hex_bytes(&job.target)) else { return };
        let message = js_sys::Object::new();
        let set = |key: &str, value: JsValue| {
            let _ = Reflect::set(&message, &key.into(), &value);
        };
        set("type", "mine".into());
        set("job", job.id.as_str().into());
        set("run", run.into());
        set("header", js_sys::Uint8Array::from(header.as_slice()).into());
        set("target", js_sys::Uint8Array::from(target.as_slice()).into());
        set("start", (slot.cursor as f64).into());
        set("end", (slot.end as f64).into());
        set("throttle", self.options.throttle.into());
        if let Some(running) = &slot.worker {
            let _ = running.worker.post_message(&message);
        }
    }

    fn pause_workers(&self) {
        let mut state = self.state.borrow_mut();
        if !std::mem::replace(&mut state.mining, false) {
            return;
        }
        let stop = js_sys::Object::new();
        let _ = Reflect::set(&stop, &"type".into(), &"stop".into());
        state.scaling.paused();
        for slot in &mut state.workers {
            slot.run = 0;
            let Some(running) = &slot.worker else { continue };
            let _ = running.worker.post_message(&stop);
        }
    }

    fn on_worker_message(self: &Rc<Self>, index: usize, data: &JsValue) {
        if self.state.borrow().stopped {
            return;
        }
        let get = |key: &str| Reflect::get(data, &key.into()).unwrap_or(JsValue::UNDEFINED);
        let kind = get("type").as_string().unwrap_or_default();
        let job = get("job").as_string().unwrap_or_default();
        let run = get("run").as_f64().unwrap_or(0.0) as u32;
        match kind.as_str() {
            "ready" => {
                if let Some(slot) = self.state.borrow_mut().workers.get_mut(index) {
                    slot.ready = true;
                }
                self.dispatch(index);
            }
            "found" => {
                let nonces = js_sys::Array::from(&get("nonces"));
                for nonce in nonces.iter().filter_map(|n| n.as_f64()) {
                    let commands = self.with_controller(|c| c.on_found(&job, nonce as u32));
                    self.perform(commands);
                }
            }
            "progress" | "stopped" | "done" => {
                let hashes = get("hashes").as_f64().unwrap_or(0.0) as u64;
                let ms = get("ms").as_f64().unwrap_or(0.0);
                self.state.borrow_mut().busy_ms += get("busy").as_f64().unwrap_or(0.0);
                if hashes > 0 {
                    self.with_controller(|c| c.on_hashes(index, hashes, ms));
                    if !std::mem::replace(&mut self.state.borrow_mut().hashing, true) {
                        self.emit("hashing", &JsValue::NULL);
                    }
                }
                let current = {
                    let mut state = self.state.borrow_mut();
                    let same_job = state.job.as_ref().is_some_and(|j| j.id == job);
                    let Some(slot) = state.workers.get_mut(index) else { return };
                    let current = same_job && slot.run == run && run != 0;
                    if same_job && let Some(position) = get("position").as_f64() {
                        slot.cursor = slot.cursor.max(position as u64);
                    }
                    if current && kind != "progress" {
                        slot.run = 0;
                        slot.exhausted = kind == "done";
                    }
                    current
                };
                if current && kind == "done" {
                    let all_done = self.state.borrow().workers.iter().all(WorkerSlot::finished);
                    if all_done {
                        let commands = self.with_controller(|c| c.on_exhausted(&job));
                        self.perform(commands);
                    }
                }
            }
            "error" => {
                let message = get("message").as_string().unwrap_or_default();
                self.emit_event(&Event::Error { code: "worker_failed".into(), message, fatal: false });
            }
            _ => {}
        }
    }

    /// Ends everything now: terminate workers, close the socket, release the lock, drop timers.
    fn shutdown(&self) {
        let (workers, handlers) = {
            let mut state = self.state.borrow_mut();
            if state.stopped {
                return;
            }
            state.stopped = true;
            state.mining = false;
            state.tick = None;
            state.reconnect = None;
            (std::mem::take(&mut state.workers), std::mem::take(&mut state.document_handlers))
        };
        for running in workers.iter().filter_map(|slot| slot.worker.as_ref()) {
            running.worker.terminate();
        }
        self.close_socket();
        self.release_tab_lock();
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            for (kind, handler) in &handlers {
                let _ = document.remove_event_listener_with_callback(kind, handler.as_ref().unchecked_ref());
            }
        }
        self.emit("stop", &JsValue::NULL);
    }
}

/// A socket event handler that holds the client weakly.
fn handler(weak: &Weak<Inner>, f: impl Fn(&Rc<Inner>, JsValue) + 'static) -> Listener {
    let weak = weak.clone();
    Closure::new(move |event: JsValue| {
        if let Some(inner) = weak.upgrade() {
            f(&inner, event);
        }
    })
}

fn hex_bytes(text: &str) -> Result<Vec<u8>, ()> {
    if text.len() % 2 != 0 {
        return Err(());
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| ())).collect()
}
