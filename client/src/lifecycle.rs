//! Wiring: page events, the timer and fetch outcomes go into the pure
//! [`herenow_core::lifecycle::Machine`]; its actions are carried out here.
//!
//! Never registers `unload` or `beforeunload` (they would keep the page out of the
//! back/forward cache). Listeners, the timer and the fetch in flight are owned by the
//! [`Client`] and go away with [`Action::Detach`] (on `stop()`).

use std::cell::RefCell;
use std::rc::Rc;

use herenow_core::lifecycle::{Action, Event, Machine};
use herenow_core::protocol::TabState;
use js_sys::Function;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{AbortController, Document, EventTarget};

use crate::error::Error;
use crate::events::Listener;
use crate::options::{MemberToken, Options};
use crate::schedule::Schedule;
use crate::transport::{self, Beat};
use crate::web::{self, global, prop};
use crate::{cookie, dom, ids};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = console, js_name = warn)]
    fn console_warn(message: &str) -> Result<(), JsValue>;
}

/// Whether the page is visible (`document.visibilityState`; visible when unknown).
#[must_use]
pub fn is_visible(document: &Document) -> bool {
    match prop(document, "visibilityState").as_string() {
        Some(state) => state == "visible",
        None => true,
    }
}

/// `event.persisted` of a `pagehide`/`pageshow`.
fn persisted(e: &JsValue) -> bool {
    prop(e, "persisted").is_truthy()
}

fn now_ms() -> u64 {
    // `as` saturates; Date.now() is a positive whole number.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let now = js_sys::Date::now() as u64;
    now
}

/// What changes while the client runs.
#[derive(Default)]
struct State {
    machine: Machine,
    schedule: Schedule,
    abort: Option<AbortController>,
    listeners: Vec<Listener>,
    last_count: Option<JsValue>,
    /// The member token last resolved, for beacons (which cannot wait for a promise).
    token: Option<String>,
    last_error: Option<Error>,
}

/// One running client: its identity, its settings and its state.
pub struct Client {
    endpoint: String,
    site: String,
    page: String,
    visitor: String,
    tab: String,
    member_token: MemberToken,
    on_count: Option<Function>,
    state: RefCell<State>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("site", &self.site)
            .field("page", &self.page)
            .field("tab", &self.tab)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Resolves the visitor id, makes a tab id, registers the lifecycle listeners and
    /// starts (a heartbeat at once when visible).
    ///
    /// # Errors
    /// Outside a browser window, or when no random id can be made.
    pub fn start(options: Options) -> Result<Rc<Self>, Error> {
        let window = global("window");
        if !window.is_object() {
            return Err(Error::new("needs a browser window"));
        }
        let window: EventTarget = window.unchecked_into();
        let document = web::document().ok_or_else(|| Error::new("needs a document"))?;
        let visitor = cookie::visitor_id(options.cookie, options.cookie_max_age)?;
        let tab = ids::new_tab_id()?;
        let page = options.page.unwrap_or_else(|| {
            prop(&prop(&window, "location"), "pathname")
                .as_string()
                .filter(|p| p.starts_with('/'))
                .unwrap_or_else(|| String::from("/"))
        });
        let client = Rc::new(Self {
            endpoint: options.endpoint,
            site: options.site,
            page,
            visitor,
            tab,
            member_token: options.member_token,
            on_count: options.on_count,
            state: RefCell::new(State::default()),
        });

        let doc_target: &EventTarget = document.as_ref();
        let on =
            |target: &EventTarget, kind: &'static str, make: fn(&JsValue, &Document) -> Event| {
                let me = Rc::clone(&client);
                let document = document.clone();
                Listener::new(target, kind, move |e| me.feed(make(&e, &document)))
            };
        let listeners = vec![
            on(doc_target, "visibilitychange", |_, d| Event::Visibility {
                visible: is_visible(d),
            }),
            on(&window, "pagehide", |e, _| Event::PageHide {
                persisted: persisted(e),
            }),
            on(&window, "pageshow", |e, d| Event::PageShow {
                persisted: persisted(e),
                visible: is_visible(d),
            }),
            on(doc_target, "freeze", |_, _| Event::Freeze),
            on(doc_target, "resume", |_, d| Event::Resume {
                visible: is_visible(d),
            }),
        ];
        if let Ok(mut s) = client.state.try_borrow_mut() {
            s.listeners = listeners;
        }
        client.feed(Event::Start {
            visible: is_visible(&document),
        });
        Ok(client)
    }

    /// The visitor id in use.
    #[must_use]
    pub fn visitor(&self) -> &str {
        &self.visitor
    }

    /// The tab id of this page instance.
    #[must_use]
    pub fn tab(&self) -> &str {
        &self.tab
    }

    /// The page path counted.
    #[must_use]
    pub fn page(&self) -> &str {
        &self.page
    }

    /// The last count object received, if any.
    #[must_use]
    pub fn last_count(&self) -> Option<JsValue> {
        self.state.try_borrow().ok()?.last_count.clone()
    }

    /// A fresh count from `GET /v1/count` for this page: a promise of the count object,
    /// rejected with a JS `Error` on failure.
    #[must_use]
    pub fn fetch_count(&self) -> transport::JsPromise {
        transport::get_count(&self.endpoint, &self.site, Some(&self.page))
    }

    /// Feeds one event to the state machine and carries out its actions.
    pub fn feed(self: &Rc<Self>, event: Event) {
        let actions = match self.state.try_borrow_mut() {
            Ok(mut s) => s.machine.handle(event, now_ms(), js_sys::Math::random()),
            Err(_) => return,
        };
        for action in actions {
            self.act(action);
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        self.state.try_borrow_mut().ok().map(|mut s| f(&mut s))
    }

    fn act(self: &Rc<Self>, action: Action) {
        match action {
            Action::Heartbeat { seq } => self.heartbeat(seq),
            Action::BeaconIdle => self.beacon("/v1/heartbeat", TabState::Idle),
            Action::BeaconLeave => self.beacon("/v1/leave", TabState::Idle),
            Action::Schedule { delay_ms } => {
                let me = Rc::clone(self);
                let old = self.with(|s| {
                    let old = s.schedule.take();
                    s.schedule.arm(delay_ms, move || {
                        let fired = me.with(|s| s.schedule.take());
                        me.feed(Event::TimerFired);
                        drop(fired);
                    });
                    old
                });
                drop(old);
            }
            Action::CancelTimer => drop(self.with(|s| s.schedule.take())),
            Action::AbortFetch => {
                if let Some(Some(controller)) = self.with(|s| s.abort.take()) {
                    controller.abort();
                }
            }
            Action::Warn => {
                let mut message = String::from("herenow: heartbeat failed, retrying with backoff");
                if let Some(Some(e)) = self.with(|s| s.last_error.take()) {
                    message.push_str(" (");
                    message.push_str(e.message());
                    message.push(')');
                }
                let _ = console_warn(&message);
            }
            Action::Detach => drop(self.with(|s| core::mem::take(&mut s.listeners))),
        }
    }

    fn beat<'a>(&'a self, state: TabState, member_token: Option<&'a str>) -> Beat<'a> {
        Beat {
            site: &self.site,
            visitor: &self.visitor,
            tab: &self.tab,
            page: &self.page,
            state,
            member_token,
        }
    }

    fn beacon(&self, path: &str, state: TabState) {
        let token = match &self.member_token {
            MemberToken::Fixed(t) => Some(t.clone()),
            _ => self.with(|s| s.token.clone()).flatten(),
        };
        let body = self.beat(state, token.as_deref()).to_json();
        transport::beacon(&transport::url(&self.endpoint, path), &body);
    }

    /// Whether heartbeat `seq` is still the one the machine waits for.
    fn is_current(&self, seq: u32) -> bool {
        self.state
            .try_borrow()
            .is_ok_and(|s| s.machine.in_flight() == Some(seq))
    }

    /// Sends heartbeat `seq`: resolves the member token (a provider may return a promise;
    /// one that throws or rejects gives none), POSTs, then publishes the count and feeds
    /// the outcome back.
    fn heartbeat(self: &Rc<Self>, seq: u32) {
        let controller = AbortController::new().ok();
        let signal = controller.as_ref().map(AbortController::signal);
        if let Some(Some(old)) = self.with(|s| core::mem::replace(&mut s.abort, controller)) {
            old.abort();
        }
        let token = match &self.member_token {
            MemberToken::None => JsValue::UNDEFINED,
            MemberToken::Fixed(t) => JsValue::from_str(t),
            MemberToken::Provider(f) => f.call0(&JsValue::UNDEFINED).unwrap_or(JsValue::UNDEFINED),
        };
        let me = Rc::clone(self);
        let _ = transport::settle(
            &token,
            Box::new(move |token| {
                let token = token
                    .ok()
                    .and_then(|t| t.as_string())
                    .filter(|t| !t.is_empty());
                me.with(|s| s.token.clone_from(&token));
                if !me.is_current(seq) {
                    return JsValue::UNDEFINED;
                }
                let body = me.beat(TabState::Active, token.as_deref()).to_json();
                let init = transport::post_init(&body, signal.as_ref());
                let url = transport::url(&me.endpoint, "/v1/heartbeat");
                transport::request(
                    &url,
                    &init,
                    Box::new(move |result| {
                        me.finish(seq, result);
                        JsValue::UNDEFINED
                    }),
                )
                .into()
            }),
        );
    }

    fn finish(self: &Rc<Self>, seq: u32, result: Result<JsValue, transport::Failure>) {
        if !self.is_current(seq) {
            return;
        }
        self.with(|s| s.abort = None);
        match result {
            Ok(count) => {
                let next_heartbeat_ms = prop(&count, "next_heartbeat_ms").as_f64();
                let window_s = prop(&count, "window_s").as_f64();
                self.with(|s| s.last_count = Some(count.clone()));
                self.feed(Event::BeatOk {
                    seq,
                    next_heartbeat_ms,
                    window_s,
                });
                dom::publish(&count, self.on_count.as_ref());
            }
            Err(failure) => {
                self.with(|s| s.last_error = Some(failure.error));
                self.feed(Event::BeatFailed {
                    seq,
                    retry_after_ms: failure.retry_after_ms,
                });
            }
        }
    }
}
