//! One tab of a site mines at a time: Web Locks where they exist, else the `localStorage` lease of
//! [`lease`] renewed every tick.

use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::Inner;
use crate::client::lease;

/// The tab lock's state.
#[derive(Default)]
pub(super) struct TabLock {
    pub held: bool,
    /// Resolves the Web Locks request's promise, which releases the lock.
    release: Option<Function>,
    /// No Web Locks here: the lock is the lease, renewed every tick.
    pub uses_lease: bool,
    /// This tab's name in the lease.
    owner: String,
}

impl Inner {
    /// Web Locks where they exist: the request waits while another tab holds the lock and is granted
    /// when that tab closes or stops. Otherwise the lease.
    pub(super) fn request_tab_lock(self: &Rc<Self>) {
        let locks = web_sys::window()
            .and_then(|w| Reflect::get(&w.navigator(), &"locks".into()).ok())
            .filter(|l| !l.is_undefined() && !l.is_null());
        let Some(locks) = locks else {
            {
                let mut state = self.state.borrow_mut();
                state.lock.uses_lease = true;
                state.lock.owner = ((js_sys::Math::random() * 2f64.powi(52)) as u64).to_string();
            }
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
                inner.state.borrow_mut().lock.release = Some(resolve);
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
            state.lock.held = true;
            // Another tab may have mined today since this one loaded the budget.
            state.budget = None;
        }
        self.evaluate();
    }

    /// Takes or renews the lease when it is free, expired or this tab's own.
    pub(super) fn renew_lease(self: &Rc<Self>) {
        let Some(storage) = self.storage() else {
            // No storage at all (some private modes): this tab cannot coordinate, so it mines.
            self.state.borrow_mut().lock.held = true;
            return;
        };
        let now = self.now();
        let key = self.key("lease");
        let mut state = self.state.borrow_mut();
        let stored = storage.get_item(&key).ok().flatten();
        let holds = lease::may_hold(stored.as_deref(), &state.lock.owner, now);
        if holds {
            let _ = storage.set_item(&key, &lease::lease(&state.lock.owner, now));
        }
        if std::mem::replace(&mut state.lock.held, holds) != holds && holds {
            state.budget = None;
        }
    }

    pub(super) fn release_tab_lock(&self) {
        let (release, had_lock) = {
            let mut state = self.state.borrow_mut();
            (state.lock.release.take(), std::mem::replace(&mut state.lock.held, false))
        };
        if let Some(release) = release {
            let _ = release.call0(&JsValue::NULL);
        } else if had_lock && let Some(storage) = self.storage() {
            let _ = storage.remove_item(&self.key("lease"));
        }
    }
}
