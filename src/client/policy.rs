//! When the SDK may mine: one pure decision from the visitor's limits and what the browser reports.
//! The browser layer gathers the facts; this module decides, so every rule is tested without a browser.

/// Why mining is paused: [`PauseReason::as_str`] is the `reason` of the SDK's `pause` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize), serde(rename_all = "kebab-case"))]
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
    /// The app host reports a metered connection (and the visitor's save-data choice applies).
    Metered,
    /// The app host reports the device's thermal state as serious or critical.
    Hot,
    /// The tab is hidden (another tab, minimised, screen off).
    Hidden,
    /// No connection to the broker (reconnecting).
    Offline,
    /// The broker has no work right now (its pools are unavailable); it sends a job when it has.
    NoWork,
}

impl PauseReason {
    /// The reason's name in the `pause` event.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::OtherTab => "other-tab",
            PauseReason::Budget => "budget",
            PauseReason::SaveData => "save-data",
            PauseReason::NotCharging => "not-charging",
            PauseReason::ChargingUnknown => "charging-unknown",
            PauseReason::LowBattery => "low-battery",
            PauseReason::Metered => "metered",
            PauseReason::Hot => "hot",
            PauseReason::Hidden => "hidden",
            PauseReason::Offline => "offline",
            PauseReason::NoWork => "no-work",
        }
    }
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
    /// The app host says the connection is metered.
    pub metered: bool,
    /// The app host says the device is hot (thermal state serious or critical).
    pub hot: bool,
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
    if limits.respect_save_data && facts.metered {
        return Err(PauseReason::Metered);
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
    if facts.hot {
        return Err(PauseReason::Hot);
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

/// Whether to hold the broker connection: kept through short pauses (a hidden tab, the battery, a hot
/// device) so mining resumes at once, but not while another tab mines or today's budget is spent.
pub fn wants_connection(facts: &Facts) -> bool {
    facts.holds_tab_lock && facts.budget_left_ms > 0
}

/// What an app host reports (docs/HOST.md); `None`: the host does not say.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostFacts {
    pub charging: Option<bool>,
    /// 0..=1.
    pub level: Option<f64>,
    pub thermal: Option<Thermal>,
    pub metered: Option<bool>,
}

/// The device's thermal state as iOS (`ProcessInfo.ThermalState`) and Android (`PowerManager`
/// thermal status, mapped) report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thermal {
    Nominal,
    Fair,
    Serious,
    Critical,
}

impl Thermal {
    pub fn parse(text: &str) -> Option<Thermal> {
        match text {
            "nominal" => Some(Thermal::Nominal),
            "fair" => Some(Thermal::Fair),
            "serious" => Some(Thermal::Serious),
            "critical" => Some(Thermal::Critical),
            _ => None,
        }
    }
}

impl HostFacts {
    /// The power to decide on: the host's report wins once it knows the charging state (a webview's
    /// Battery API, where there is one, sees the same device less well); else the browser's.
    pub fn power(&self, browser: Power) -> Power {
        match self.charging {
            Some(charging) => Power::Known(Battery { charging, level: self.level.unwrap_or(1.0) }),
            None => browser,
        }
    }

    pub fn hot(&self) -> bool {
        matches!(self.thermal, Some(Thermal::Serious | Thermal::Critical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn pause_reasons_are_named_as_serde_would_name_them() {
        use PauseReason::*;
        let every = [
            OtherTab,
            Budget,
            SaveData,
            NotCharging,
            ChargingUnknown,
            LowBattery,
            Metered,
            Hot,
            Hidden,
            Offline,
            NoWork,
        ];
        for reason in every {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }

    fn mining() -> Facts {
        Facts {
            holds_tab_lock: true,
            budget_left_ms: 60_000,
            save_data: false,
            metered: false,
            hot: false,
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
            (Facts { metered: true, ..mining() }, PauseReason::Metered),
            (Facts { hot: true, ..mining() }, PauseReason::Hot),
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
        assert_eq!(decide(&ignore_save_data, &Facts { metered: true, ..mining() }), Ok(()));
    }

    #[test]
    fn the_most_lasting_reason_is_reported_first() {
        let everything_wrong = Facts {
            holds_tab_lock: false,
            budget_left_ms: 0,
            save_data: true,
            metered: true,
            hot: true,
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
        assert_eq!(decide(&limits, &facts), Err(PauseReason::Metered));
        let facts = Facts { metered: false, ..facts };
        assert_eq!(decide(&limits, &facts), Err(PauseReason::LowBattery));
        let facts = Facts { power: Power::Unknown, ..facts };
        assert_eq!(decide(&limits, &facts), Err(PauseReason::Hot), "a hot device outlasts a hidden tab");
        let facts = Facts { hot: false, ..facts };
        assert_eq!(decide(&limits, &facts), Err(PauseReason::Hidden));
        let facts = Facts { visible: true, ..facts };
        assert_eq!(decide(&limits, &facts), Err(PauseReason::Offline), "offline before no work");
    }

    #[test]
    fn the_connection_is_kept_through_short_pauses_only() {
        assert!(wants_connection(&Facts { visible: false, hot: true, connected: false, ..mining() }));
        assert!(!wants_connection(&Facts { holds_tab_lock: false, ..mining() }), "another tab mines");
        assert!(!wants_connection(&Facts { budget_left_ms: 0, ..mining() }), "done for today");
    }

    #[test]
    fn an_app_host_knows_power_a_webview_cannot_see() {
        let unplugged = HostFacts { charging: Some(false), level: Some(0.5), ..HostFacts::default() };
        let power = unplugged.power(Power::Unknown);
        assert_eq!(power, Power::Known(Battery { charging: false, level: 0.5 }));
        let charging_only = Limits { require_charging: true, ..Limits::default() };
        let facts = Facts { power, ..mining() };
        assert_eq!(decide(&charging_only, &facts), Err(PauseReason::NotCharging), "not charging_unknown");
        let plugged = HostFacts { charging: Some(true), ..HostFacts::default() };
        assert_eq!(
            decide(&charging_only, &Facts { power: plugged.power(Power::Unknown), ..mining() }),
            Ok(())
        );
        let silent = HostFacts::default();
        assert_eq!(
            silent.power(Power::Pending),
            Power::Pending,
            "a host that does not say leaves the browser's"
        );
        assert!(!silent.hot());
        assert!(HostFacts { thermal: Thermal::parse("serious"), ..silent }.hot());
        assert!(!HostFacts { thermal: Thermal::parse("fair"), ..silent }.hot());
        assert_eq!(Thermal::parse("lukewarm"), None);
    }
}
