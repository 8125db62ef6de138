//! What the page can tell about the device: visibility, the Battery API where it exists, the
//! browser's save-data hint; and what an app host reports instead (docs/HOST.md).

use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::VisibilityState;

use super::{Inner, Listener};
use crate::client::policy::{Battery, HostFacts, Power};

/// The page's facts and the listeners that keep them current.
#[derive(Default)]
pub(super) struct Page {
    /// The browser's power facts (Battery API); `host` may know better.
    pub power: Power,
    pub host: HostFacts,
    /// Removed on stop.
    pub document_handlers: Vec<(&'static str, Listener)>,
}

impl Inner {
    pub(super) fn watch_page(self: &Rc<Self>) {
        let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
        let weak = Rc::downgrade(self);
        let on_visibility = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.evaluate();
            }
        });
        let _ = document
            .add_event_listener_with_callback("visibilitychange", on_visibility.as_ref().unchecked_ref());
        self.state.borrow_mut().page.document_handlers.push(("visibilitychange", on_visibility));
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
            self.state.borrow_mut().page.power = Power::Unknown;
            return;
        };
        self.state.borrow_mut().page.power = Power::Pending;
        let weak = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            let answer = wasm_bindgen_futures::JsFuture::from(promise).await;
            let Some(inner) = weak.upgrade() else { return };
            let Ok(manager) = answer else {
                // Refused (a permissions policy, say): the browser does not say.
                inner.state.borrow_mut().page.power = Power::Unknown;
                inner.evaluate();
                return;
            };
            inner.state.borrow_mut().page.power = Power::Known(battery(&manager));
            let weak = Rc::downgrade(&inner);
            let watched = manager.clone();
            let on_change = Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.state.borrow_mut().page.power = Power::Known(battery(&watched));
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

    /// What the app host reports: `{charging, level, thermal, metered}`, each `null` when it does not say.
    pub(super) fn set_host_facts(&self, facts: &JsValue) {
        let fields = super::options::Fields(facts);
        let host = HostFacts {
            charging: fields.boolean("charging"),
            level: fields.number("level").filter(|l| (0.0..=1.0).contains(l)),
            thermal: fields.string("thermal").as_deref().and_then(crate::client::policy::Thermal::parse),
            metered: fields.boolean("metered"),
        };
        self.state.borrow_mut().page.host = host;
    }

    pub(super) fn remove_page_listeners(&self) {
        let handlers = std::mem::take(&mut self.state.borrow_mut().page.document_handlers);
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            for (kind, handler) in &handlers {
                let _ = document.remove_event_listener_with_callback(kind, handler.as_ref().unchecked_ref());
            }
        }
    }
}

/// A `BatteryManager`'s state (a missing field reads as charging and full: nothing to hold back for).
fn battery(manager: &JsValue) -> Battery {
    let fields = super::options::Fields(manager);
    Battery {
        charging: fields.boolean("charging").unwrap_or(true),
        level: fields.number("level").unwrap_or(1.0),
    }
}

pub(super) fn visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_none_or(|d| d.visibility_state() == VisibilityState::Visible)
}

pub(super) fn save_data() -> bool {
    web_sys::window()
        .and_then(|w| Reflect::get(&w.navigator(), &"connection".into()).ok())
        .filter(|c| c.is_object())
        .and_then(|c| Reflect::get(&c, &"saveData".into()).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}
