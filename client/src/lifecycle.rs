//! Wiring: page events, the timer and fetch outcomes go into the pure
//! [`Machine`]; its actions are carried out here.
//!
//! Never registers `unload` or `beforeunload` (they would keep the page out of the
//! back/forward cache). Listeners, the timer and the fetch in flight are owned by the
//! [`Client`] and go away with [`Action::Detach`] (on `stop()`).
//!
//! Unless a page was given, the client follows same-document navigations: the Navigation
//! API's `currententrychange` where the browser has it (every current engine), else
//! `popstate` and the `herenow:navigate` event that the script tag's loader dispatches from
//! its wrappers of `history.pushState`/`replaceState` (which fire no event of their own).
//! Those wrappers live in the loader because in Rust they cost about 1 KB of gzip.
//!
//! Watch-only (`track: false`) runs the same machine, but its heartbeats are
//! `GET /v1/count` and its beacons are skipped: counts at the server's interval while
//! visible, nothing while hidden, no visitor id and no cookie.

use std::cell::RefCell;
use std::rc::Rc;

use herenow_core::protocol::TabState;
use js_sys::Function;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{AbortController, Document, EventTarget};

use crate::error::Error;
use crate::events::Listener;
use crate::machine::{Action, Event, Machine};
use crate::options::{MemberToken, Options};
use crate::schedule::Schedule;
use crate::transport::{self, BeatBody};
use crate::web::{self, global, prop};
use crate::{cookie, dom, ids};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = console, js_name = warn)]
    fn console_warn(message: &str) -> Result<(), JsValue>;
}

/// Whether the page is visible (`document.visibilityState`; visible when unknown).
#[must_use]
pub(crate) fn is_visible(document: &Document) -> bool {
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

/// The page path of `location`, or `/`.
fn location_path() -> String {
    prop(&global("location"), "pathname")
        .as_string()
        .filter(|p| p.starts_with('/'))
        .unwrap_or_else(|| String::from("/"))
}

/// What changes while the client runs.
#[derive(Default)]
struct State {
    machine: Machine,
    /// The page path counted.
    page: String,
    /// Whether the page follows `location` (no page given, no `setPage` yet).
    follow: bool,
    /// The member token the server last refused (401): never sent again.
    refused_token: Option<String>,
    schedule: Schedule,
    abort: Option<AbortController>,
    listeners: Vec<Listener>,
    last_count: Option<JsValue>,
    /// The member token last resolved, for beacons (which cannot wait for a promise).
    token: Option<String>,
    last_error: Option<Error>,
}

/// One running client: its identity, its settings and its state.
pub(crate) struct Client {
    endpoint: String,
    site: String,
    /// Empty when watching only.
    visitor: String,
    /// Counted (`true`) or watching only.
    track: bool,
    /// The cookie's `Max-Age` when the visitor id lives in the cookie (renewed by each
    /// heartbeat), `None` when it lives in memory.
    cookie_max_age: Option<u32>,
    tab: String,
    member_token: MemberToken,
    on_count: Option<Function>,
    state: RefCell<State>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("site", &self.site)
            .field("tab", &self.tab)
            .field("track", &self.track)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Resolves the visitor id, makes a tab id, registers the lifecycle listeners and
    /// starts (a heartbeat at once when visible).
    ///
    /// # Errors
    /// Outside a browser window, or when no random id can be made.
    pub(crate) fn start(options: Options) -> Result<Rc<Self>, Error> {
        let window = global("window");
        if !window.is_object() {
            return Err(Error::new("needs a browser window"));
        }
        let window: EventTarget = window.unchecked_into();
        let document = web::document().ok_or_else(|| Error::new("needs a document"))?;
        let track = options.track;
        let visitor = if track {
            cookie::visitor_id(options.cookie, options.cookie_max_age)?
        } else {
            String::new()
        };
        let cookie_max_age =
            (track && cookie::uses_cookie(options.cookie)).then_some(options.cookie_max_age);
        let tab = ids::new_tab_id()?;
        let follow = options.page.is_none();
        let page = options.page.unwrap_or_else(location_path);
        let client = Rc::new(Self {
            endpoint: options.endpoint,
            site: options.site,
            visitor,
            track,
            cookie_max_age,
            tab,
            member_token: options.member_token,
            on_count: options.on_count,
            state: RefCell::new(State {
                page,
                follow,
                ..State::default()
            }),
        });

        let doc_target: &EventTarget = document.as_ref();
        let on =
            |target: &EventTarget, kind: &'static str, make: fn(&JsValue, &Document) -> Event| {
                let me = Rc::clone(&client);
                let document = document.clone();
                Listener::new(target, kind, move |e| me.feed(make(&e, &document)))
            };
        let mut listeners = vec![
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
        if follow {
            let navigation = global("navigation");
            // The loader's wrappers of pushState/replaceState say `herenow:navigate`.
            let follow_on: &[(&EventTarget, &'static str)] = if navigation.is_object() {
                &[(navigation.unchecked_ref(), "currententrychange")]
            } else {
                &[(&window, "popstate"), (&window, "herenow:navigate")]
            };
            for &(target, kind) in follow_on {
                let me = Rc::clone(&client);
                listeners.push(Listener::new(target, kind, move |_| me.follow_location()));
            }
        }
        if let Ok(mut s) = client.state.try_borrow_mut() {
            s.listeners = listeners;
        }
        client.feed(Event::Start {
            visible: is_visible(&document),
        });
        Ok(client)
    }

    /// The page path counted.
    #[must_use]
    pub(crate) fn page(&self) -> String {
        self.with(|s| s.page.clone()).unwrap_or_default()
    }

    /// Counts this tab on `path` from now on, and stops following `location`; a path that
    /// does not start with `/` is ignored (the server would refuse it).
    pub(crate) fn set_page(self: &Rc<Self>, path: String) {
        if path.starts_with('/') {
            self.with(|s| s.follow = false);
            self.move_to(path);
        }
    }

    /// A same-document navigation happened: moves to `location`'s path when following.
    fn follow_location(self: &Rc<Self>) {
        if self.with(|s| s.follow) == Some(true) {
            self.move_to(location_path());
        }
    }

    /// Counts this tab on `path`: a heartbeat at once when it changed.
    fn move_to(self: &Rc<Self>, path: String) {
        let moved = self.with(|s| {
            let moved = s.page != path;
            s.page = path;
            moved
        });
        if moved == Some(true) {
            self.feed(Event::Navigate);
        }
    }

    /// The last count object received, if any.
    #[must_use]
    pub(crate) fn last_count(&self) -> Option<JsValue> {
        self.state.try_borrow().ok()?.last_count.clone()
    }

    /// A fresh count from `GET /v1/count` for this page: a promise of the count object,
    /// rejected with a JS `Error` on failure.
    #[must_use]
    pub(crate) fn fetch_count(&self) -> transport::JsPromise {
        transport::get_count(&self.endpoint, &self.site, Some(&self.page()))
    }

    /// Feeds one event to the state machine and carries out its actions.
    pub(crate) fn feed(self: &Rc<Self>, event: Event) {
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
            Action::Heartbeat { seq } if !self.track => self.watch(seq),
            Action::Heartbeat { seq } => self.heartbeat(seq, 0),
            Action::BeaconIdle | Action::BeaconLeave if !self.track => {}
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

    /// The JSON body of a heartbeat, idle or leave for the current page.
    fn body(&self, state: TabState, member_token: Option<&str>) -> String {
        BeatBody {
            site: &self.site,
            visitor: &self.visitor,
            tab: &self.tab,
            page: &self.page(),
            state,
            member_token,
        }
        .to_json()
    }

    fn beacon(&self, path: &str, state: TabState) {
        let token = self
            .with(|s| match &self.member_token {
                MemberToken::Fixed(t) if s.refused_token.as_ref() != Some(t) => Some(t.clone()),
                MemberToken::Fixed(_) => None,
                _ => s.token.clone(),
            })
            .flatten();
        let body = self.body(state, token.as_deref());
        transport::beacon(&transport::url(&self.endpoint, path), &body);
    }

    /// Whether heartbeat `seq` is still the one the machine waits for.
    fn is_current(&self, seq: u32) -> bool {
        self.state
            .try_borrow()
            .is_ok_and(|s| s.machine.in_flight() == Some(seq))
    }

    /// Watch-only's heartbeat `seq`: a count of the current page, fed back as its outcome.
    fn watch(self: &Rc<Self>, seq: u32) {
        let me = Rc::clone(self);
        let _ = transport::count(
            &self.endpoint,
            &self.site,
            Some(&self.page()),
            Box::new(move |result| {
                me.finish(seq, result, None, 0);
                JsValue::UNDEFINED
            }),
        );
    }

    /// Sends heartbeat `seq`: resolves the member token (a provider may return a promise;
    /// one that throws or rejects gives none), POSTs, then publishes the count and feeds
    /// the outcome back. `tries` counts the member tokens refused for this heartbeat: a
    /// refused token is never sent again, a provider is asked again once, and after a
    /// second refusal the heartbeat goes as a guest's.
    fn heartbeat(self: &Rc<Self>, seq: u32, tries: u8) {
        let controller = AbortController::new().ok();
        let signal = controller.as_ref().map(AbortController::signal);
        if let Some(Some(old)) = self.with(|s| core::mem::replace(&mut s.abort, controller)) {
            old.abort();
        }
        let token = match &self.member_token {
            _ if tries >= 2 => JsValue::UNDEFINED,
            MemberToken::None => JsValue::UNDEFINED,
            MemberToken::Fixed(t) => JsValue::from_str(t),
            MemberToken::Provider(f) => f.call0(&JsValue::UNDEFINED).unwrap_or(JsValue::UNDEFINED),
        };
        let me = Rc::clone(self);
        let _ = transport::settle(
            &token,
            Box::new(move |token| {
                let token = me
                    .with(|s| {
                        let token = token
                            .ok()
                            .and_then(|t| t.as_string())
                            .filter(|t| !t.is_empty() && s.refused_token.as_ref() != Some(t));
                        s.token.clone_from(&token);
                        token
                    })
                    .flatten();
                if !me.is_current(seq) {
                    return JsValue::UNDEFINED;
                }
                let body = me.body(TabState::Active, token.as_deref());
                let init = transport::post_init(&body, signal.as_ref());
                let url = transport::url(&me.endpoint, "/v1/heartbeat");
                transport::request(
                    &url,
                    &init,
                    Box::new(move |result| {
                        me.finish(seq, result, token, tries);
                        JsValue::UNDEFINED
                    }),
                )
                .into()
            }),
        );
    }

    /// The outcome of heartbeat `seq`, sent with member `token` on try `tries`.
    fn finish(
        self: &Rc<Self>,
        seq: u32,
        result: Result<JsValue, transport::Failure>,
        token: Option<String>,
        tries: u8,
    ) {
        if !self.is_current(seq) {
            return;
        }
        self.with(|s| s.abort = None);
        match result {
            // A refused member token (expired, wrong key): counted as a guest, not dropped.
            Err(failure) if failure.status == 401 && token.is_some() => {
                // One warning: at the first refusal.
                if self.with(|s| s.refused_token.replace(token.unwrap_or_default()).is_none())
                    == Some(true)
                {
                    let _ = console_warn(
                        "herenow: member token refused (HTTP 401), counting this visitor as a guest",
                    );
                }
                self.heartbeat(seq, tries + 1);
            }
            Ok(count) => {
                if let Some(max_age_s) = self.cookie_max_age {
                    cookie::store(&self.visitor, max_age_s);
                }
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
