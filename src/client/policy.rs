//! When the SDK may mine: one pure decision from the visitor's limits and what the browser reports.
//! The browser layer gathers the facts; this module decides, so every rule is tested without a browser.

use serde::Serialize;

/// Why mining is paused. Serialised as the `reason` of the SDK's `pause` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PauseReason {
    /// Another tab of the same site is mining (only one tab mines at a time).
    OtherTab,
    /// Today's mining budget is used up; mining resumes the next (local) day.
    Budget,
    /// The browser asks to save data (`Save-Data`, `navigator.connection.saveData`).
    SaveData,
    /// The device is on battery and the publisher or visitor asked for charging only.
    NotCharging,
    /// Charging only was asked for, and this browser cannot tell whether the device is charging
    /// (no Battery API: Firefox, Safari and every iOS webview; or the API refused): the promise
    /// cannot be kept here, so nothing runs.
    ChargingUnknown,
    /// The device is on battery and the battery is low.
    LowBattery,
    /// The tab is hidden (another tab, minimised, screen off).
    Hidden,
    /// No connection to the broker (reconnecting).
    Offline,
    /// The broker has no work right now (its pools are unavailable); it sends a job when it has.
    NoWork,
}

/// The limits the visitor and publisher set (`MinePass.init` options).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Mine only while charging (where the Battery API exists).
    pub require_charging: bool,
    /// On battery below this level (0..=1), pause.
    pub low_battery: f64,
    /// Pause while the browser asks to save data.
    pub respect_save_data: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { require_charging: false, low_battery: 0.2, respect_save_data: true }
    }
}

/// What the browser says of the device's power.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Power {
    /// Not known yet: the Battery API was asked and has not answered.
    #[default]
    Pending,
    /// The browser does not say (no Battery API, or it refused): battery rules cannot apply.
    Unknown,
    Known(Battery),
}

/// Battery state from the Battery API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Battery {
    pub charging: bool,
    /// 0..=1.
    pub level: f64,
}

/// What the browser reports right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts {
    /// This tab holds the site's mining lock.
    pub holds_tab_lock: bool,
    /// Milliseconds of today's budget left.
    pub budget_left_ms: u64,
    pub save_data: bool,
    pub power: Power,
    pub visible: bool,
    /// The broker session is open.
    pub connected: bool,
    /// The broker has given a job that is still current (not followed by `wait`).
    pub has_work: bool,
}

/// `Ok(())` to mine, or the first reason to pause. Reasons are checked from the most lasting to the
/// most passing, so the visitor is told the one that matters (a budget pause outlives a hidden tab).
pub fn decide(limits: &Limits, facts: &Facts) -> Result<(), PauseReason> {
    if !facts.holds_tab_lock {
        return Err(PauseReason::OtherTab);
    }
    if facts.budget_left_ms == 0 {
        return Err(PauseReason::Budget);
    }
    if limits.respect_save_data && facts.save_data {
        return Err(PauseReason::SaveData);
    }
    match facts.power {
        Power::Known(battery) if !battery.charging => {
            if limits.require_charging {
                return Err(PauseReason::NotCharging);
            }
            if battery.level < limits.low_battery {
                return Err(PauseReason::LowBattery);
            }
        }
        Power::Known(_) => {}
        // Charging only is a promise: not kept on a guess, so it waits for the answer.
        Power::Pending if limits.require_charging => return Err(PauseReason::NotCharging),
        Power::Unknown if limits.require_charging => return Err(PauseReason::ChargingUnknown),
        Power::Pending | Power::Unknown => {}
    }
    if !facts.visible {
        return Err(PauseReason::Hidden);
    }
    if !facts.connected {
        return Err(PauseReason::Offline);
    }
    if !facts.has_work {
        return Err(PauseReason::NoWork);
    }
    Ok(())
}

/// Worker threads to run: the visitor's or publisher's choice, else all cores but one, at least one.
pub fn threads(requested: Option<u32>, hardware_concurrency: u32) -> u32 {
    requested.unwrap_or(hardware_concurrency.saturating_sub(1)).clamp(1, hardware_concurrency.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn mining() -> Facts {
        Facts {
            holds_tab_lock: true,
            budget_left_ms: 60_000,
            save_data: false,
            power: Power::Unknown,
            visible: true,
            connected: true,
            has_work: true,
        }
    }

    #[test]
    fn mines_when_nothing_stands_in_the_way() {
        assert_eq!(decide(&Limits::default(), &mining()), Ok(()));
        let charging_low = Battery { charging: true, level: 0.05 };
        let facts = Facts { power: Power::Known(charging_low), ..mining() };
        assert_eq!(decide(&Limits { require_charging: true, ..Limits::default() }, &facts), Ok(()));
    }

    #[test]
    fn each_fact_pauses_with_its_reason() {
        let limits = Limits::default();
        let on_battery = |level| Power::Known(Battery { charging: false, level });
        let cases = [
            (Facts { holds_tab_lock: false, ..mining() }, PauseReason::OtherTab),
            (Facts { budget_left_ms: 0, ..mining() }, PauseReason::Budget),
            (Facts { save_data: true, ..mining() }, PauseReason::SaveData),
            (Facts { power: on_battery(0.1), ..mining() }, PauseReason::LowBattery),
            (Facts { visible: false, ..mining() }, PauseReason::Hidden),
            (Facts { connected: false, ..mining() }, PauseReason::Offline),
            (Facts { has_work: false, ..mining() }, PauseReason::NoWork),
        ];
        for (facts, reason) in cases {
            assert_eq!(decide(&limits, &facts), Err(reason), "{facts:?}");
        }
        let charging_only = Limits { require_charging: true, ..limits };
        let facts = Facts { power: on_battery(0.9), ..mining() };
        assert_eq!(decide(&charging_only, &facts), Err(PauseReason::NotCharging));
        assert_eq!(decide(&limits, &facts), Ok(()), "a full battery is fine without require_charging");
        // Without the Battery API the low-battery rule cannot apply, and charging only cannot be
        // promised: nothing runs (Firefox and WebKit mined "only while charging" before).
        assert_eq!(decide(&limits, &mining()), Ok(()));
        assert_eq!(decide(&charging_only, &mining()), Err(PauseReason::ChargingUnknown));
        let pending = Facts { power: Power::Pending, ..mining() };
        assert_eq!(decide(&limits, &pending), Ok(()));
        assert_eq!(decide(&charging_only, &pending), Err(PauseReason::NotCharging), "waits for the answer");
        let ignore_save_data = Limits { respect_save_data: false, ..limits };
        assert_eq!(decide(&ignore_save_data, &Facts { save_data: true, ..mining() }), Ok(()));
    }

    #[test]
    fn the_most_lasting_reason_is_reported_first() {
        let everything_wrong = Facts {
            holds_tab_lock: false,
            budget_left_ms: 0,
            save_data: true,
            power: Power::Known(Battery { charging: false, level: 0.0 }),
            visible: false,
            connected: false,
            has_work: false,
        };
        let limits = Limits::default();
        assert_eq!(decide(&limits, &everything_wrong), Err(PauseReason::OtherTab));
        let facts = Facts { holds_tab_lock: true, ..everything_wrong };
        assert_eq!(decide(&limits, &facts), Err(PauseReason::Budget));
        let facts = Facts { budget_left_ms: 1, save_data: false, ..facts };
        assert_eq!(decide(&limits, &facts), Err(PauseReason::LowBattery));
        let facts = Facts { power: Power::Unknown, ..facts };
        assert_eq!(decide(&limits, &facts), Err(PauseReason::Hidden));
        let facts = Facts { visible: true, ..facts };
        assert_eq!(decide(&limits, &facts), Err(PauseReason::Offline), "offline before no work");
    }

    #[test]
    fn threads_default_to_all_cores_but_one_and_stay_in_range() {
        assert_eq!(threads(None, 8), 7);
        assert_eq!(threads(None, 2), 1);
        assert_eq!(threads(None, 1), 1);
        assert_eq!(threads(None, 0), 1, "hardwareConcurrency can be missing");
        assert_eq!(threads(Some(4), 8), 4);
        assert_eq!(threads(Some(0), 8), 1);
        assert_eq!(threads(Some(64), 8), 8, "never more workers than cores");
    }
}
