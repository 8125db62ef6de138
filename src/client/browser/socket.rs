//! The broker connection: the WebSocket, reconnects with backoff, and broker frames read into
//! [`ServerMessage`] without serde.

use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, WebSocket};

use super::options::Fields;
use super::{Inner, Listener, State};
use crate::client::backoff::Backoff;
use crate::client::controller::{Controller, Event};
use crate::protocol::{ClientMessage, Frame, FrameKey, FrameProgress, ServerMessage};

/// The connection's state.
pub(super) struct Connection {
    pub socket: Option<WebSocket>,
    handlers: Vec<Listener>,
    backoff: Backoff,
    /// A reconnect is scheduled: no socket until it fires.
    reconnect: Option<Timeout>,
    /// When the last keep-alive ping went out.
    pub last_ping: f64,
}

impl Default for Connection {
    fn default() -> Connection {
        Connection {
            socket: None,
            handlers: Vec::new(),
            backoff: Backoff::new(1000, 60_000),
            reconnect: None,
            last_ping: 0.0,
        }
    }
}

impl Connection {
    /// Work arrived: the connection is healthy, the next reconnect starts from the shortest delay.
    pub fn healthy(&mut self) {
        self.backoff.reset();
    }

    /// No reconnect fires after a stop.
    pub fn cancel_reconnect(&mut self) {
        self.reconnect = None;
    }
}

impl Inner {
    pub(super) fn ensure_socket(self: &Rc<Self>) {
        {
            let state = self.state.borrow();
            if state.connection.socket.is_some() || state.connection.reconnect.is_some() || state.stopped {
                return;
            }
        }
        let Ok(socket) = WebSocket::new(&self.options.broker) else {
            self.schedule_reconnect();
            return;
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
        let on_close = handler(&weak, |inner, _| inner.on_socket_closed());
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let mut state = self.state.borrow_mut();
        state.connection.socket = Some(socket);
        state.connection.handlers = vec![on_open, on_message, on_close];
    }

    fn on_socket_closed(self: &Rc<Self>) {
        {
            let mut state = self.state.borrow_mut();
            // The handlers stay until the next socket replaces them: this runs inside one of them.
            state.connection.socket = None;
            state.end_session();
        }
        self.pause_workers();
        if !self.state.borrow().stopped {
            self.schedule_reconnect();
            self.evaluate();
        }
    }

    fn schedule_reconnect(self: &Rc<Self>) {
        let delay = self.state.borrow_mut().connection.backoff.next_delay_ms(js_sys::Math::random());
        let weak = Rc::downgrade(self);
        let timeout = Timeout::new(delay as u32, move || {
            if let Some(inner) = weak.upgrade() {
                inner.state.borrow_mut().connection.reconnect = None;
                inner.evaluate();
            }
        });
        self.state.borrow_mut().connection.reconnect = Some(timeout);
    }

    /// Closes the socket on purpose (policy or stop): no reconnect follows.
    pub(super) fn close_socket(&self) {
        let mut state = self.state.borrow_mut();
        let Some(socket) = state.connection.socket.take() else { return };
        socket.set_onclose(None);
        let _ = socket.close_with_code(1000);
        state.end_session();
        state.connection.handlers.clear();
    }

    pub(super) fn send(&self, message: &ClientMessage) {
        if let Some(socket) = &self.state.borrow().connection.socket
            && socket.ready_state() == WebSocket::OPEN
        {
            let _ = socket.send_with_str(&message.to_json());
        }
    }
}

impl State {
    /// The socket is gone: the broker's session and its job with it.
    fn end_session(&mut self) {
        if let Some(controller) = self.controller.as_mut() {
            controller.on_disconnected();
        }
        self.workers.job = None;
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

/// A broker message from its JSON text: `JSON.parse`, then the protocol's own checks.
fn server_message(text: &str) -> Option<ServerMessage> {
    let value = js_sys::JSON::parse(text).ok()?;
    let f = Fields(&value);
    let frame = Frame {
        kind: f.string("type")?,
        v: f.integer("v").map(|n| n as u32),
        session: f.string("session"),
        resume: f.string("resume"),
        mode: f.string("mode"),
        share_interval_ms: f.integer("share_interval_ms"),
        progress: f.array_of("progress", |p| FrameProgress {
            content: p.string("content"),
            done: p.string("done"),
            required: p.string("required"),
        }),
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
        keys: f.array_of("keys", |k| FrameKey {
            version: k.integer("version").and_then(|n| u32::try_from(n).ok()),
            key: k.string("key"),
        }),
    };
    ServerMessage::try_from(frame).ok()
}
