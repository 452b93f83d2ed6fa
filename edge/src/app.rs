//! Routing and handlers over plain request/response values and any [`Store`], so that
//! they run natively in tests on the memory store. The Workers glue (`glue.rs`) only
//! converts `worker::Request` to [`HttpRequest`] and [`HttpResponse`] back.

use serde::Serialize;
use std::cell::RefCell;

use herenow_core::engine::{Member, Presence};
use herenow_core::history::{History, Range, Recorder};
use herenow_core::limits::Limiter;
use herenow_core::protocol::{
    BeatResponse, MAX_BODY_BYTES, normalize_page, parse_beat, validate_site,
};
use herenow_core::service::Service;
use herenow_core::store::Store;
use herenow_core::token;
use herenow_core::{Code, Error};

use crate::cache::Probe;
use crate::config::{Config, SiteConfig, read_key_name};
use crate::widget;

/// A request, as the handlers see it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// `GET`, `POST`, `OPTIONS`, ….
    pub method: String,
    /// The path, e.g. `/v1/count`.
    pub path: String,
    /// The raw query string without `?`.
    pub query: String,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Content-Length` header, if it parsed.
    pub content_length: Option<u64>,
    /// The body (empty for GET).
    pub body: Vec<u8>,
    /// The client's IP (`CF-Connecting-IP`), used only for rate limits, never stored.
    pub client_ip: Option<String>,
    /// The `Authorization` header: `Bearer <read key>` lets `/v1/online` name the members
    /// of a site that keeps them private.
    pub authorization: Option<String>,
}

/// A response, as the handlers build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn json(status: u16, body: String) -> Self {
        Self::new(status)
            .header("content-type", "application/json; charset=utf-8")
            .header("cache-control", "no-store")
            .with_body(body.into_bytes())
    }

    /// A 200 answer carrying `value` as JSON (a value that cannot be encoded is a 500).
    fn json_ok(value: &impl Serialize) -> Result<Self, Error> {
        let body =
            serde_json::to_string(value).map_err(|e| Error::new(Code::Internal, e.to_string()))?;
        Ok(Self::json(200, body))
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The response for an error: its code's status, the JSON body
    /// `{"error":{"code":"…","message":"…"}}` and `Retry-After` if any. The one place an
    /// [`Error`] becomes an HTTP answer.
    #[must_use]
    pub fn from_error(e: &Error) -> Self {
        let code = e.code();
        let body =
            serde_json::json!({ "error": { "code": code.as_str(), "message": e.message() } });
        let r = Self::json(code.status(), body.to_string());
        match e.retry_after_s() {
            Some(s) => r.header("retry-after", s.to_string()),
            None => r,
        }
    }

    /// The first value of header `name` (case-insensitive).
    #[must_use]
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The app: configuration plus this isolate's presence service.
#[derive(Debug)]
pub struct App {
    config: Config,
    service: Service,
    recorder: Recorder,
    limiter: RefCell<Limiter>,
    probe: Probe,
}

/// A webhook call the glue must make (inside `waitUntil`, retried as
/// `herenow_core::history::alerts::RETRY_DELAYS_MS` says).
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The webhook (a secret: not in `Debug`).
    pub url: String,
    /// The JSON body `{"site","online","threshold","at"}`.
    pub body: String,
}

impl core::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Outgoing")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

/// The value of `key` in a query string, decoded as a form (`+` is a space, `%XX` a byte;
/// malformed escapes are kept as they are, and the value is then validated as any other).
fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The API's routes, parsed once from the path ([`Route::parse`]); one handler each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/healthz`: liveness, and with `DEBUG_STATS` the isolate's sizes.
    Health,
    /// `POST /v1/heartbeat`.
    Heartbeat,
    /// `POST /v1/leave` (the pagehide beacon).
    Leave,
    /// `GET /v1/count`.
    Count,
    /// `GET /v1/online`: members online.
    Online,
    /// `GET /v1/last-seen`: when a member was last seen.
    LastSeen,
    /// `GET /v1/badge.svg`: the count as an image.
    Badge,
    /// `GET /v1/history`: online people over time, the day's peak and the record.
    History,
    /// `GET /v1/widget`: the embeddable page of a public site.
    Widget,
}

impl Route {
    /// The route at `path`, if any.
    #[must_use]
    pub fn parse(path: &str) -> Option<Self> {
        Some(match path {
            "/healthz" => Self::Health,
            "/v1/heartbeat" => Self::Heartbeat,
            "/v1/leave" => Self::Leave,
            "/v1/count" => Self::Count,
            "/v1/online" => Self::Online,
            "/v1/last-seen" => Self::LastSeen,
            "/v1/badge.svg" => Self::Badge,
            "/v1/history" => Self::History,
            "/v1/widget" => Self::Widget,
            _ => return None,
        })
    }

    /// The methods the route allows, as a 405's `Allow` says.
    fn allow(self) -> &'static str {
        match self {
            Self::Health => "GET, HEAD",
            Self::Heartbeat | Self::Leave => "POST, OPTIONS",
            Self::Count
            | Self::Online
            | Self::LastSeen
            | Self::Badge
            | Self::History
            | Self::Widget => "GET, HEAD, OPTIONS",
        }
    }
}

fn not_found() -> Error {
    Error::new(Code::NotFound, "no such route")
}

fn method_not_allowed(allow: &str) -> Error {
    Error::new(Code::MethodNotAllowed, format!("this route allows {allow}"))
}

impl App {
    /// An app for `config`, in an isolate named `isolate` (a random id);
    /// `seed` keys the limiter's hashes (random per isolate).
    #[must_use]
    pub fn new(config: Config, isolate: &str, seed: u64) -> Self {
        let mut presence = Presence::new(isolate, config.engine.clone());
        if let Some(location) = &config.location {
            presence = presence.with_location(location);
        }
        let service = Service::new(presence);
        let rules = config
            .sites
            .iter()
            .filter(|(_, s)| !s.alerts.is_empty())
            .map(|(name, s)| (name.clone(), s.alert_rules()))
            .collect();
        let mut history = History::new(isolate, config.history, rules);
        if let Some(location) = &config.location {
            history = history.with_location(location);
        }
        let recorder = Recorder::new(history);
        let limiter = RefCell::new(Limiter::new(config.limits, seed));
        let probe = Probe::new(config.channel);
        Self {
            config,
            service,
            recorder,
            limiter,
            probe,
        }
    }

    /// Whether [`App::background`] has anything to do at `now` (no I/O: the glue asks before
    /// it schedules any).
    #[must_use]
    pub fn background_due(&self, now: u64) -> bool {
        !self.recorder.sites_due(now).is_empty()
    }

    /// The work after a response: each site's history read and written as due, and the
    /// webhook calls of alerts that fired. Failures wait for a later request: a heartbeat
    /// never waits for, or fails on, any of it.
    pub async fn background<S: Store>(&self, store: &S, now: u64) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for site in self.recorder.sites_due(now) {
            let Ok(fired) = self.recorder.sync(store, now, &site).await else {
                continue;
            };
            let Some(conf) = self.config.site(&site) else {
                continue;
            };
            for due in fired {
                if let Some(alert) = conf.alerts.get(due.index) {
                    out.push(Outgoing {
                        url: alert.webhook.url().to_owned(),
                        body: due.body(),
                    });
                }
            }
        }
        out
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The presence service.
    #[must_use]
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Whether this isolate's probe found the per-location channel (the Cache API) working,
    /// and when it probes again (`crate::cache`).
    #[must_use]
    pub fn channel_probe(&self) -> &Probe {
        &self.probe
    }

    /// `/healthz` with `DEBUG_STATS` set: this isolate's id (as in its record keys: a new
    /// one means the isolate restarted), the wasm linear memory's size (on wasm32; it never
    /// shrinks, so it is the peak the Rust heap needed), how many entries the engine and
    /// the limiter hold, and whether the per-location channel is on. Counts only, nothing about any visitor.
    #[must_use]
    pub fn debug_stats(&self, now: u64) -> String {
        let (engine, isolate) = self.service.with(|p| (p.stats(), p.isolate().to_owned()));
        serde_json::json!({
            "ok": true,
            "now": now,
            "isolate": isolate,
            "wasm_memory_bytes": wasm_memory_bytes(),
            "engine": engine,
            "limiter_keys": self.limiter.borrow().tracked(),
            "channel": self.probe.on(),
        })
        .to_string()
    }

    /// Handles one request at time `now` (Unix ms). Never panics on any input: every path
    /// ends in a response.
    pub async fn handle<S: Store>(&self, store: &S, now: u64, req: &HttpRequest) -> HttpResponse {
        if let Some(refused) = self.admit(now, req) {
            return refused;
        }
        self.handle_admitted(store, now, req).await
    }

    /// The per-address request limit, checked on the request's head alone, before its body
    /// is read: an address over its limit is answered 429 at once, without waiting for (or
    /// reading) a body, and a request whose body then fails to arrive has still counted.
    /// `None` when the request may go on to [`App::handle_admitted`].
    #[must_use]
    pub fn admit(&self, now: u64, req: &HttpRequest) -> Option<HttpResponse> {
        if !req.path.starts_with("/v1/") || req.method == "OPTIONS" {
            return None;
        }
        let limited = self
            .limiter
            .borrow_mut()
            .request(now, req.client_ip.as_deref());
        limited.err().map(|e| self.error_response(req, &e))
    }

    /// Handles a request that [`App::admit`] let through (its body read by now).
    pub async fn handle_admitted<S: Store>(
        &self,
        store: &S,
        now: u64,
        req: &HttpRequest,
    ) -> HttpResponse {
        match self.route(store, now, req).await {
            Ok(r) => self.with_cors(req, r),
            // A page whose origin is refused may read why (its message names the fix), so
            // the client can say it: CORS on this answer only, which records nothing.
            Err(e) if e.code() == Code::OriginNotAllowed && req.method != "OPTIONS" => {
                let resp = self.with_cors(req, HttpResponse::from_error(&e));
                match req.origin.as_deref() {
                    Some(o) if resp.header_value("access-control-allow-origin").is_none() => {
                        resp.header("access-control-allow-origin", o)
                    }
                    _ => resp,
                }
            }
            Err(e) => self.with_cors(req, HttpResponse::from_error(&e)),
        }
    }

    /// The answer to a request that failed before [`App::handle`] could run (its body did
    /// not arrive in time, or could not be read): the error's response with the same CORS
    /// headers as any other API answer, so that a browser can read it.
    #[must_use]
    pub fn error_response(&self, req: &HttpRequest, e: &Error) -> HttpResponse {
        self.with_cors(req, HttpResponse::from_error(e))
    }

    /// Adds `Vary: Origin` to API answers, and the CORS headers when a site allows the
    /// request's origin.
    fn with_cors(&self, req: &HttpRequest, mut resp: HttpResponse) -> HttpResponse {
        let cors_origin = req
            .origin
            .as_deref()
            .filter(|o| self.config.any_site_allows(o))
            .map(str::to_owned);
        if req.path.starts_with("/v1/") {
            resp = resp.header("vary", "Origin");
            if let Some(o) = cors_origin {
                resp = resp.header("access-control-allow-origin", o);
                // What a preflight asks; on other responses browsers ignore these.
                if req.method == "OPTIONS" {
                    resp = resp
                        .header("access-control-allow-methods", "GET, POST, OPTIONS")
                        .header(
                            "access-control-allow-headers",
                            "content-type, authorization",
                        )
                        .header("access-control-max-age", "86400");
                } else {
                    resp = resp.header("access-control-expose-headers", "retry-after");
                }
            }
        }
        resp
    }

    async fn route<S: Store>(
        &self,
        store: &S,
        now: u64,
        req: &HttpRequest,
    ) -> Result<HttpResponse, Error> {
        let route = Route::parse(&req.path).ok_or_else(not_found)?;
        match (route, req.method.as_str()) {
            (Route::Health, "GET" | "HEAD") if self.config.debug_stats => {
                Ok(HttpResponse::json(200, self.debug_stats(now)))
            }
            (Route::Health, "GET" | "HEAD") => {
                Ok(HttpResponse::json(200, r#"{"ok":true}"#.to_owned()))
            }
            (Route::Health, _) => Err(method_not_allowed(route.allow())),
            (_, "OPTIONS") => self.preflight(req),
            (Route::Heartbeat | Route::Leave, "POST") => {
                self.post_beat(store, now, req, route).await
            }
            (
                Route::Count
                | Route::Online
                | Route::LastSeen
                | Route::Badge
                | Route::History
                | Route::Widget,
                "GET" | "HEAD",
            ) => self.get(store, now, req, route).await,
            _ => Err(method_not_allowed(route.allow())),
        }
    }

    fn preflight(&self, req: &HttpRequest) -> Result<HttpResponse, Error> {
        match req.origin.as_deref() {
            Some(o) if self.config.any_site_allows(o) => Ok(HttpResponse::new(204)),
            _ => Err(Error::new(
                Code::OriginNotAllowed,
                "this origin is not allowed by any site",
            )),
        }
    }

    fn check_site(&self, site: &str, origin: Option<&str>) -> Result<(), Error> {
        validate_site(site)?;
        let Some(conf) = self.config.site(site) else {
            return Err(Error::new(
                Code::UnknownSite,
                format!("site {site:?} is not configured"),
            ));
        };
        if let Some(o) = origin
            && !conf.origins.iter().any(|a| a == o)
        {
            return Err(Error::new(
                Code::OriginNotAllowed,
                format!(
                    "origin {o:?} is not allowed for site {site:?}: add it to that site's origins in SITES"
                ),
            ));
        }
        Ok(())
    }

    async fn post_beat<S: Store>(
        &self,
        store: &S,
        now: u64,
        req: &HttpRequest,
        route: Route,
    ) -> Result<HttpResponse, Error> {
        if req
            .content_length
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
            || req.body.len() > MAX_BODY_BYTES
        {
            return Err(Error::new(
                Code::BodyTooLarge,
                format!("body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        let mime = req
            .content_type
            .as_deref()
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        if !matches!(mime.as_deref(), Some("application/json" | "text/plain")) {
            return Err(Error::new(
                Code::UnsupportedMediaType,
                "content-type must be application/json or text/plain",
            ));
        }
        let beat = parse_beat(&req.body)?;
        self.check_site(&beat.site, req.origin.as_deref())?;
        if route == Route::Leave {
            self.service.leave(store, now, &beat).await;
            return Ok(HttpResponse::new(204));
        }
        let member = self.member(&beat.site, beat.member_token.as_deref(), now)?;
        self.limiter
            .borrow_mut()
            .heartbeat(now, req.client_ip.as_deref(), &beat.visitor)?;
        let mut resp = self.service.heartbeat(store, now, &beat, member).await?;
        resp.record = self.recorder.observe(now, &beat.site, resp.count.online);
        HttpResponse::json_ok(&resp)
    }

    /// The member a token names, verified with the site's secret; `None` without a token.
    fn member(&self, site: &str, token: Option<&str>, now: u64) -> Result<Option<Member>, Error> {
        let Some(token) = token else { return Ok(None) };
        let secret = self
            .config
            .site(site)
            .and_then(|s| s.member_secret.as_deref())
            .ok_or_else(|| {
                Error::new(
                    Code::InvalidMemberToken,
                    format!("site {site:?} has no members (no member secret is configured)"),
                )
            })?;
        token::verify(token, secret.as_bytes(), now).map(Some)
    }

    /// Whether the request may read the names of `site`'s members: the site opted in
    /// (`members_public`), or the request carries its read key. Without a key: 401; with a
    /// wrong one: 403.
    fn check_member_reader(&self, site: &str, authorization: Option<&str>) -> Result<(), Error> {
        let conf = self.config.site(site);
        if conf.is_some_and(|c| c.members_public) {
            return Ok(());
        }
        let given = authorization
            .and_then(|a| a.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim());
        let Some(given) = given else {
            return Err(Error::new(
                Code::ReadKeyRequired,
                format!(
                    "site {site:?} keeps its member list private: send its read key (secret {}) \
                     as Authorization: Bearer <key>, or set \"members_public\": true for it in SITES",
                    read_key_name(site)
                ),
            ));
        };
        match conf.and_then(|c| c.read_key.as_deref()) {
            Some(key) if same_secret(key.as_bytes(), given.as_bytes()) => Ok(()),
            _ => Err(Error::new(
                Code::InvalidReadKey,
                format!("this is not the read key of site {site:?}"),
            )),
        }
    }

    async fn get<S: Store>(
        &self,
        store: &S,
        now: u64,
        req: &HttpRequest,
        route: Route,
    ) -> Result<HttpResponse, Error> {
        let site = query_param(&req.query, "site")
            .ok_or_else(|| Error::new(Code::InvalidSite, "query parameter site is required"))?;
        self.check_site(&site, None)?;
        let conf = self.config.site(&site);
        match route {
            Route::Online => {
                self.check_member_reader(&site, req.authorization.as_deref())?;
                let members = self.service.online(store, now, &site).await?;
                HttpResponse::json_ok(&serde_json::json!({ "members": members }))
            }
            Route::LastSeen => {
                let member = query_param(&req.query, "member")
                    .filter(|m| token::is_member_id(m))
                    .ok_or_else(|| {
                        Error::new(
                            Code::InvalidMember,
                            "query parameter member must be 1-128 bytes",
                        )
                    })?;
                let seen = self.service.last_seen(store, now, &site, &member).await?;
                HttpResponse::json_ok(&seen)
            }
            Route::Badge => {
                check_public(&site, conf, SiteConfig::history_public)?;
                let count = self.service.count(store, now, &site, None).await?;
                self.recorder.observe(now, &site, count.online);
                Ok(HttpResponse::new(200)
                    .header("content-type", "image/svg+xml; charset=utf-8")
                    .header("cache-control", "public, max-age=5")
                    .header("x-content-type-options", "nosniff")
                    .with_body(badge_svg(count.online).into_bytes()))
            }
            Route::History => {
                check_public(&site, conf, SiteConfig::history_public)?;
                let range = match query_param(&req.query, "range") {
                    None => Range::Day,
                    Some(r) => Range::parse(&r)?,
                };
                let answer = self.recorder.history(store, now, &site, range).await?;
                HttpResponse::json_ok(&answer)
            }
            Route::Widget => {
                check_public(&site, conf, SiteConfig::widget_public)?;
                let count = self.service.count(store, now, &site, None).await?;
                self.recorder.observe(now, &site, count.online);
                let day = self.recorder.history(store, now, &site, Range::Day).await?;
                let interval_ms = self.service.with(|p| p.config().heartbeat_ms);
                Ok(HttpResponse::new(200)
                    .header("content-type", "text/html; charset=utf-8")
                    .header("content-security-policy", widget::csp())
                    .header("cache-control", "no-store")
                    .header("x-content-type-options", "nosniff")
                    .header("referrer-policy", "no-referrer")
                    .with_body(
                        widget::page(&site, count.online, &day.points, interval_ms).into_bytes(),
                    ))
            }
            _ => {
                let page = query_param(&req.query, "page")
                    .map(|p| normalize_page(&p))
                    .transpose()?;
                let count = self
                    .service
                    .count(store, now, &site, page.as_deref())
                    .await?;
                // With the heartbeat interval: how often a watch-only page asks again.
                let next_heartbeat_ms = self.service.with(|p| p.config().heartbeat_ms);
                let record = self.recorder.observe(now, &site, count.online);
                let answer = BeatResponse {
                    count,
                    next_heartbeat_ms,
                    record,
                };
                HttpResponse::json_ok(&answer)
            }
        }
    }
}

/// 403 `not_public` unless `allowed` holds for the site (see [`SiteConfig::history_public`]
/// and [`SiteConfig::widget_public`]).
fn check_public(
    site: &str,
    conf: Option<&SiteConfig>,
    allowed: fn(&SiteConfig) -> bool,
) -> Result<(), Error> {
    if conf.is_some_and(allowed) {
        return Ok(());
    }
    Err(Error::new(
        Code::NotPublic,
        format!(
            "site {site:?} does not publish this: set \"public\": true for it in SITES (the widget needs it; \"public\": false refuses widget, history and badge)"
        ),
    ))
}

/// Whether two secrets are equal, in time that depends on their length only (the length
/// is no secret: every key is at least 32 bytes), so a timing attack learns no prefix.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

/// The size of the wasm linear memory (memory 0) in bytes; `None` off wasm32.
#[must_use]
pub fn wasm_memory_bytes() -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    {
        Some(core::arch::wasm32::memory_size(0) as u64 * 65_536)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}

/// A shields-style badge "online | N". It holds only digits from the count: nothing from
/// the request is reflected into it.
#[must_use]
pub fn badge_svg(online: u64) -> String {
    let value = online.to_string();
    // Verdana 11px is ~7 px per digit; the label "online" is ~37 px.
    let label_w = 47;
    let value_w = 13 + 7 * value.len();
    let w = label_w + value_w;
    let lx = label_w * 5;
    let vx = (label_w * 2 + value_w) * 5;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="online: {value}"><title>online: {value}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{label_w}" height="20" fill="#555"/><rect x="{label_w}" width="{value_w}" height="20" fill="#2e7d32"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110" text-rendering="geometricPrecision"><text x="{lx}" y="140" transform="scale(.1)">online</text><text x="{vx}" y="140" transform="scale(.1)">{value}</text></g></svg>"##
    )
}

/// The path and query of an absolute URL as `Request.url` serialises it
/// (`scheme://authority/path?query#fragment`), without a full URL parse. A URL
/// without a path gives `/`; the fragment is dropped.
#[must_use]
pub fn path_and_query(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(url, |i| &url[i + 3..]);
    let rest = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let rest = rest.split('#').next().unwrap_or(rest);
    match rest.split_once('?') {
        Some((path, query)) => (path, query),
        None => (rest, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herenow_core::store::{ManualClock, MemoryStore, block_on_ready};

    const V1: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
    const V2: &str = "6fa459ea-ee8a-4ca4-894e-db77e160355e";
    const ORIGIN: &str = "http://127.0.0.1:8787";

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const READ_KEY: &str = "read-key-read-key-read-key-012345";

    fn app_with(extra: &[(&str, &str)]) -> App {
        let sites = format!(r#"{{"demo":{{"origins":["{ORIGIN}"]}}}}"#);
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = Config::from_lookup(|k| match k {
            "SITES" => Some(sites.clone()),
            "MEMBER_SECRET_DEMO" => Some(SECRET.to_owned()),
            _ => extra.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        })
        .expect("config");
        App::new(config, "iso-a", 7)
    }

    fn app() -> App {
        app_with(&[("READ_KEY_DEMO", READ_KEY)])
    }

    fn post(path: &str, body: &str) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: path.into(),
            origin: Some(ORIGIN.into()),
            content_type: Some("text/plain;charset=UTF-8".into()),
            body: body.as_bytes().to_vec(),
            ..HttpRequest::default()
        }
    }

    fn beat(v: &str, tab: &str) -> String {
        format!(r#"{{"site":"demo","visitor":"{v}","tab":"{tab}","page":"/"}}"#)
    }

    fn get(path: &str, query: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            ..HttpRequest::default()
        }
    }

    fn json(r: &HttpResponse) -> serde_json::Value {
        serde_json::from_slice(&r.body).expect("json body")
    }

    #[test]
    fn two_tabs_one_person_then_leave() {
        let clock = ManualClock::new(1_000_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        let run = |r: HttpRequest| block_on_ready(app.handle(&store, clock.now_ms(), &r));
        assert_eq!(run(post("/v1/heartbeat", &beat(V1, "a"))).status, 200);
        let r = run(post("/v1/heartbeat", &beat(V1, "b")));
        assert_eq!(
            (json(&r)["online"].clone(), json(&r)["tabs"].clone()),
            (1.into(), 2.into())
        );
        assert_eq!(r.header_value("access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(
            r.header_value("access-control-expose-headers"),
            Some("retry-after")
        );
        let r = run(post("/v1/heartbeat", &beat(V2, "c")));
        assert_eq!(json(&r)["online"], 2);
        assert_eq!(json(&r)["next_heartbeat_ms"], 90_000);
        assert_eq!(run(post("/v1/leave", &beat(V2, "c"))).status, 204);
        let r = run(get("/v1/count", "site=demo"));
        assert_eq!(json(&r)["online"], 1);
        assert_eq!(json(&r)["pages"][0]["page"], "/");
    }

    #[test]
    fn errors_have_codes_and_record_nothing() {
        let clock = ManualClock::new(1_000_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        let run = |r: HttpRequest| block_on_ready(app.handle(&store, clock.now_ms(), &r));
        let mut wrong_type = post("/v1/heartbeat", &beat(V1, "a"));
        wrong_type.content_type = Some("application/x-www-form-urlencoded".into());
        let mut evil = post("/v1/heartbeat", &beat(V1, "a"));
        evil.origin = Some("http://evil.example".into());
        let cases = [
            (post("/v1/heartbeat", "{"), 400, "invalid_json"),
            (
                post("/v1/heartbeat", &beat("nope", "a")),
                400,
                "invalid_visitor",
            ),
            (
                post("/v1/heartbeat", &beat(V1, "a").replace("demo", "other")),
                403,
                "unknown_site",
            ),
            (evil, 403, "origin_not_allowed"),
            (wrong_type, 415, "unsupported_media_type"),
            (
                post("/v1/heartbeat", &" ".repeat(5000)),
                413,
                "body_too_large",
            ),
            (get("/v1/heartbeat", ""), 405, "method_not_allowed"),
            (get("/nope", ""), 404, "not_found"),
            (get("/v1/count", ""), 400, "invalid_site"),
            (get("/v1/count", "site=zzz"), 403, "unknown_site"),
        ];
        for (req, status, code) in cases {
            let r = run(req);
            assert_eq!(r.status, status, "{code}");
            assert_eq!(json(&r)["error"]["code"], code);
        }
        assert_eq!(json(&run(get("/v1/count", "site=demo")))["online"], 0);
        assert_eq!(store.ops().writes, 0, "nothing recorded");
    }

    #[test]
    fn a_refused_origin_can_read_why_and_nothing_is_recorded() {
        let clock = ManualClock::new(1_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        let mut evil = post("/v1/heartbeat", &beat(V1, "a"));
        evil.origin = Some("http://evil.example".into());
        let r = block_on_ready(app.handle(&store, clock.now_ms(), &evil));
        assert_eq!(r.status, 403);
        assert_eq!(
            r.header_value("access-control-allow-origin"),
            Some("http://evil.example")
        );
        let message = json(&r)["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        for part in ["http://evil.example", "\"demo\"", "SITES"] {
            assert!(message.contains(part), "{message}");
        }
        // Only that error: a refused origin reads nothing else.
        let mut count = get("/v1/count", "site=demo");
        count.origin = evil.origin.clone();
        let r = block_on_ready(app.handle(&store, clock.now_ms(), &count));
        assert_eq!(r.status, 200);
        assert_eq!(r.header_value("access-control-allow-origin"), None);
        // The count tells a watch-only page the server's interval.
        assert_eq!(json(&r)["next_heartbeat_ms"], 90_000);
        assert_eq!(store.ops().writes, 0, "nothing recorded");
    }

    #[test]
    fn steady_heartbeats_cost_no_write_each() {
        let clock = ManualClock::new(1_000_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        for i in 0..100 {
            let r = block_on_ready(app.handle(
                &store,
                clock.now_ms(),
                &post("/v1/heartbeat", &beat(V1, "a")),
            ));
            assert_eq!(r.status, 200, "beat {i}");
            clock.advance(15_000);
        }
        // 25 minutes of heartbeats: one join, then only lease renewals (every ~200 s).
        let writes = store.ops().writes;
        assert!(
            writes <= 1 + 25 * 60 / 200 + 1,
            "{writes} writes for 100 heartbeats"
        );
    }

    #[test]
    fn store_failure_is_503_with_retry_after() {
        let clock = ManualClock::new(1_000_000);
        let store = MemoryStore::new(clock.clone());
        store.set_failing(true);
        let app = app();
        let r = block_on_ready(app.handle(
            &store,
            clock.now_ms(),
            &post("/v1/heartbeat", &beat(V1, "a")),
        ));
        assert_eq!(r.status, 503);
        assert_eq!(r.header_value("retry-after"), Some("5"));
        assert_eq!(json(&r)["error"]["code"], "store_unavailable");
        // Short windows get a Retry-After of one heartbeat interval, never past the window.
        for (window, heartbeat, want) in
            [("4", None, "1"), ("6", Some("0.5"), "1"), ("12", None, "3")]
        {
            let mut settings = vec![("WINDOW_S", window)];
            settings.extend(heartbeat.map(|h| ("HEARTBEAT_S", h)));
            let short = app_with(&settings);
            for req in [
                post("/v1/heartbeat", &beat(V1, "a")),
                get("/v1/count", "site=demo"),
            ] {
                let r = block_on_ready(short.handle(&store, clock.now_ms(), &req));
                assert_eq!(r.status, 503, "{window} {}", req.path);
                assert_eq!(
                    r.header_value("retry-after"),
                    Some(want),
                    "{window} {}",
                    req.path
                );
            }
        }
        store.set_failing(false);
        let r = block_on_ready(app.handle(&store, clock.now_ms(), &get("/v1/count", "site=demo")));
        assert_eq!(
            json(&r)["online"],
            0,
            "the failed heartbeat recorded nothing"
        );
    }

    #[test]
    fn an_error_answer_has_its_codes_status_and_an_escaped_json_body() {
        let e = Error::new(Code::InvalidPage, "page \"<x>\" is bad");
        let r = HttpResponse::from_error(&e);
        assert_eq!(r.status, 400);
        assert_eq!(json(&r)["error"]["code"], "invalid_page");
        assert_eq!(json(&r)["error"]["message"], "page \"<x>\" is bad");
        assert_eq!(r.header_value("retry-after"), None);
        let r = HttpResponse::from_error(&Error::unavailable("kv down", 5));
        assert_eq!(r.status, 503);
        assert_eq!(json(&r)["error"]["code"], "store_unavailable");
        assert_eq!(r.header_value("retry-after"), Some("5"));
    }

    #[test]
    fn errors_before_the_app_get_cors_headers_too() {
        let app = app();
        let slow = Error::new(Code::SlowBody, "too slow");
        let mut req = post("/v1/heartbeat", "");
        let r = app.error_response(&req, &slow);
        assert_eq!(r.status, 408);
        assert_eq!(json(&r)["error"]["code"], "slow_body");
        assert_eq!(r.header_value("access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(r.header_value("vary"), Some("Origin"));
        req.origin = Some("http://evil.example".into());
        let r = app.error_response(&req, &slow);
        assert_eq!(r.header_value("access-control-allow-origin"), None);
    }

    #[test]
    fn preflight_and_query_decoding() {
        let store = MemoryStore::new(ManualClock::new(0));
        let app = app();
        let mut pre = get("/v1/heartbeat", "");
        pre.method = "OPTIONS".into();
        pre.origin = Some(ORIGIN.into());
        let r = block_on_ready(app.handle(&store, 0, &pre));
        assert_eq!(r.status, 204);
        assert_eq!(r.header_value("access-control-allow-origin"), Some(ORIGIN));
        pre.origin = Some("http://evil.example".into());
        let r = block_on_ready(app.handle(&store, 0, &pre));
        assert_eq!(r.status, 403);
        assert_eq!(r.header_value("access-control-allow-origin"), None);
        assert_eq!(
            query_param("site=de%6Do&page=%2Fa%20b", "page").as_deref(),
            Some("/a b")
        );
        // A malformed escape stays as it is; validation then refuses the site.
        assert_eq!(query_param("site=%zz", "site").as_deref(), Some("%zz"));
        let r = block_on_ready(app.handle(&store, 0, &get("/v1/count", "site=%zz")));
        assert_eq!(r.status, 400);
        assert_eq!(Route::parse("/v1/count"), Some(Route::Count));
        assert_eq!(Route::parse("/v1/count/"), None);
    }

    #[test]
    fn the_member_list_needs_the_read_key_unless_public() {
        let clock = ManualClock::new(1_800_000_000_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        let run = |auth: Option<&str>| {
            let r = HttpRequest {
                authorization: auth.map(str::to_owned),
                ..get("/v1/online", "site=demo")
            };
            block_on_ready(app.handle(&store, clock.now_ms(), &r))
        };
        let r = run(None);
        assert_eq!(r.status, 401);
        assert_eq!(json(&r)["error"]["code"], "read_key_required");
        let msg = json(&r)["error"]["message"].to_string();
        assert!(
            msg.contains("READ_KEY_DEMO") && msg.contains("members_public"),
            "{msg}"
        );
        let wrong = format!("Bearer {}", READ_KEY.replace('0', "1"));
        for auth in [wrong.as_str(), "Basic abc", "Bearer"] {
            assert!(matches!(run(Some(auth)).status, 401 | 403), "{auth}");
        }
        assert_eq!(run(Some(&wrong)).status, 403);
        assert_eq!(run(Some(&format!("bearer {READ_KEY}"))).status, 200);
        // Counts stay public.
        let count =
            block_on_ready(app.handle(&store, clock.now_ms(), &get("/v1/count", "site=demo")));
        assert_eq!(count.status, 200);
        assert!(
            !same_secret(b"abc", b"abd")
                && !same_secret(b"abc", b"ab")
                && same_secret(b"abc", b"abc")
        );
    }

    #[test]
    fn members_online_and_last_seen() {
        let clock = ManualClock::new(1_800_000_000_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        let run = |r: HttpRequest| block_on_ready(app.handle(&store, clock.now_ms(), &r));
        let now_s = clock.now_ms() / 1000;
        let tok = token::mint(SECRET.as_bytes(), "ada", "Ada <L>", now_s + 600, None);
        let with_tok = format!(
            r#"{{"site":"demo","visitor":"{V1}","tab":"a","page":"/x","member_token":"{tok}"}}"#
        );
        let r = run(post("/v1/heartbeat", &with_tok));
        assert_eq!(
            (json(&r)["members"].clone(), json(&r)["guests"].clone()),
            (1.into(), 0.into())
        );
        run(post("/v1/heartbeat", &beat(V2, "b")));
        let online = json(&run(HttpRequest {
            authorization: Some(format!("Bearer {READ_KEY}")),
            ..get("/v1/online", "site=demo")
        }));
        assert_eq!(online["members"].as_array().map(Vec::len), Some(1));
        assert_eq!(online["members"][0]["name"], "Ada <L>");
        assert_eq!(online["members"][0]["page"], "/x");
        let seen = json(&run(get("/v1/last-seen", "site=demo&member=ada")));
        assert_eq!(seen["online"], true);
        clock.advance(5_000);
        run(post("/v1/leave", &with_tok));
        block_on_ready(app.service().flush(&store, clock.now_ms() + 1_000)).expect("flush");
        let seen = json(&run(get("/v1/last-seen", "site=demo&member=ada")));
        assert_eq!(seen["online"], false);
        assert_eq!(seen["last_seen"], clock.now_ms());
        // A fresh isolate (restart) reads last-seen from the store.
        let fresh = app_with(&[]);
        let seen = json(&block_on_ready(fresh.handle(
            &store,
            clock.now_ms(),
            &get("/v1/last-seen", "site=demo&member=ada"),
        )));
        assert_eq!(seen["last_seen"], clock.now_ms());
        let never = json(&run(get("/v1/last-seen", "site=demo&member=bob")));
        assert_eq!(never["last_seen"], serde_json::Value::Null);
        assert_eq!(run(get("/v1/last-seen", "site=demo")).status, 400);
    }

    #[test]
    fn bad_member_tokens_are_401_and_record_nothing() {
        let clock = ManualClock::new(1_800_000_000_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        let now_s = clock.now_ms() / 1000;
        for tok in [
            token::mint(SECRET.as_bytes(), "ada", "Ada", now_s - 1, None),
            token::mint(
                b"wrong-key-wrong-key-wrong-key-12",
                "ada",
                "Ada",
                now_s + 60,
                None,
            ),
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZGEiLCJleHAiOjk5OTk5OTk5OTl9.".to_owned(),
        ] {
            let b =
                format!(r#"{{"site":"demo","visitor":"{V1}","tab":"a","member_token":"{tok}"}}"#);
            let r = block_on_ready(app.handle(&store, clock.now_ms(), &post("/v1/heartbeat", &b)));
            assert_eq!(r.status, 401);
            assert_eq!(json(&r)["error"]["code"], "invalid_member_token");
        }
        let r = block_on_ready(app.handle(&store, clock.now_ms(), &get("/v1/count", "site=demo")));
        assert_eq!(json(&r)["online"], 0);
    }

    #[test]
    fn badge_holds_only_digits_from_the_count() {
        let store = MemoryStore::new(ManualClock::new(1_000_000));
        let app = app();
        block_on_ready(app.handle(&store, 1_000_000, &post("/v1/heartbeat", &beat(V1, "a"))));
        let r = block_on_ready(app.handle(
            &store,
            1_000_000,
            &get("/v1/badge.svg", "site=demo&x=%3Cscript%3E"),
        ));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header_value("content-type"),
            Some("image/svg+xml; charset=utf-8")
        );
        let svg = String::from_utf8(r.body).expect("utf8");
        assert!(svg.contains(">1</text>"));
        assert!(!svg.contains("script"));
        assert_eq!(badge_svg(12345).matches("12345").count(), 3);
    }

    #[test]
    fn one_address_can_add_at_most_the_new_visitor_cap() {
        let store = MemoryStore::new(ManualClock::new(1_000_000));
        let app = app_with(&[("NEW_VISITORS_PER_IP_PER_MIN", "5")]);
        let mut limited = 0;
        for i in 0..30u32 {
            let v = herenow_core::protocol::visitor_id_from_random([i as u8; 16]);
            let mut req = post("/v1/heartbeat", &beat(&v, "t"));
            req.client_ip = Some("203.0.113.9".into());
            let r = block_on_ready(app.handle(&store, 1_000_000, &req));
            if r.status == 429 {
                limited += 1;
                assert!(r.header_value("retry-after").is_some());
            }
        }
        assert_eq!(limited, 25);
        let r = block_on_ready(app.handle(&store, 1_000_000, &get("/v1/count", "site=demo")));
        assert_eq!(json(&r)["online"], 5);
    }

    #[test]
    fn an_address_over_its_request_limit_is_refused_on_the_head_before_any_body() {
        let app = app_with(&[("RATE_IP_PER_MIN", "3")]);
        let mut head = post("/v1/heartbeat", "");
        head.client_ip = Some("203.0.113.9".into());
        // Three heads pass (their bodies may then never come), the fourth is 429 at once.
        for _ in 0..3 {
            assert!(app.admit(1_000_000, &head).is_none());
        }
        let refused = app.admit(1_000_000, &head).expect("refused");
        assert_eq!(refused.status, 429);
        assert!(refused.header_value("retry-after").is_some());
        assert_eq!(
            refused.header_value("access-control-allow-origin"),
            Some(ORIGIN)
        );
        // Another address, and the preflight and non-API routes, are not limited by it.
        let mut other = head.clone();
        other.client_ip = Some("203.0.113.10".into());
        assert!(app.admit(1_000_000, &other).is_none());
        let mut preflight = head.clone();
        preflight.method = "OPTIONS".into();
        assert!(app.admit(1_000_000, &preflight).is_none());
        let mut health = get("/healthz", "");
        health.client_ip = head.client_ip.clone();
        assert!(app.admit(1_000_000, &health).is_none());
    }

    #[test]
    fn path_and_query_split_a_serialised_url() {
        assert_eq!(
            path_and_query("http://127.0.0.1:8787/v1/count?site=demo&page=%2F"),
            ("/v1/count", "site=demo&page=%2F")
        );
        assert_eq!(path_and_query("https://a.example/"), ("/", ""));
        assert_eq!(path_and_query("https://a.example"), ("/", ""));
        assert_eq!(
            path_and_query("https://a.example/x/y#f?not-query"),
            ("/x/y", "")
        );
        assert_eq!(path_and_query("https://a.example/p?q=1#f"), ("/p", "q=1"));
        assert_eq!(path_and_query("https://a.example/p?"), ("/p", ""));
    }

    #[test]
    fn healthz_reports_state_sizes_only_when_asked() {
        let store = MemoryStore::new(ManualClock::new(1_000_000));
        let plain = app();
        let r = block_on_ready(plain.handle(&store, 1_000_000, &get("/healthz", "")));
        assert_eq!(json(&r), serde_json::json!({ "ok": true }));
        let app = app_with(&[("DEBUG_STATS", "1")]);
        let mut req = post("/v1/heartbeat", &beat(V1, "a"));
        req.client_ip = Some("203.0.113.9".into());
        assert_eq!(
            block_on_ready(app.handle(&store, 1_000_000, &req)).status,
            200
        );
        let r = block_on_ready(app.handle(&store, 1_000_000, &get("/healthz", "")));
        let j = json(&r);
        assert_eq!(j["ok"], true);
        assert_eq!(j["isolate"], "iso-a");
        assert_eq!(j["engine"]["tabs"], 1);
        assert_eq!(j["engine"]["sites"], 1);
        assert_eq!(j["limiter_keys"], 4);
        assert_eq!(j["wasm_memory_bytes"], serde_json::Value::Null);
        // No probe has run (the glue runs it): the channel is off.
        assert_eq!(j["channel"], false);
        assert!(!String::from_utf8_lossy(&r.body).contains(V1));
    }

    fn app_sites(sites: &str, extra: &[(&str, &str)], isolate: &str) -> App {
        let sites = sites.to_owned();
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = Config::from_lookup(|k| match k {
            "SITES" => Some(sites.clone()),
            _ => extra.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        })
        .expect("config");
        App::new(config, isolate, 7)
    }

    #[test]
    fn public_false_refuses_widget_history_and_badge_and_unset_only_the_widget() {
        let store = MemoryStore::new(ManualClock::new(1_800_000_000_000));
        let now = 1_800_000_000_000;
        for (public, widget, history, badge) in [
            (r#","public":false"#, 403, 403, 403),
            ("", 403, 200, 200),
            (r#","public":true"#, 200, 200, 200),
        ] {
            let app = app_sites(
                &format!(r#"{{"demo":{{"origins":["{ORIGIN}"]{public}}}}}"#),
                &[],
                "iso-a",
            );
            let run = |path: &str, q: &str| block_on_ready(app.handle(&store, now, &get(path, q)));
            for (path, want) in [
                ("/v1/widget", widget),
                ("/v1/history", history),
                ("/v1/badge.svg", badge),
            ] {
                let r = run(path, "site=demo");
                assert_eq!(r.status, want, "{public} {path}");
                if want == 403 {
                    assert_eq!(json(&r)["error"]["code"], "not_public");
                }
            }
            assert_eq!(
                run("/v1/count", "site=demo").status,
                200,
                "counts stay public"
            );
        }
    }

    #[test]
    fn history_answers_its_ranges_and_refuses_others() {
        let clock = ManualClock::new(1_800_000_000_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        let r = block_on_ready(app.handle(
            &store,
            clock.now_ms(),
            &post("/v1/heartbeat", &beat(V1, "a")),
        ));
        assert_eq!(r.status, 200);
        let h =
            |q: &str| block_on_ready(app.handle(&store, clock.now_ms(), &get("/v1/history", q)));
        let day = json(&h("site=demo"));
        assert_eq!(
            (day["range"].clone(), day["step_s"].clone()),
            ("24h".into(), 300.into())
        );
        assert_eq!(day["points"].as_array().map(Vec::len), Some(288));
        assert_eq!(day["points"][287][1], 1);
        assert_eq!(day["record"]["online"], 1);
        assert_eq!(day["peak"]["online"], 1);
        assert_eq!(json(&h("site=demo&range=1h"))["step_s"], 60);
        assert_eq!(json(&h("site=demo&range=7d"))["step_s"], 3600);
        let bad = h("site=demo&range=2d");
        assert_eq!(
            (bad.status, json(&bad)["error"]["code"].clone()),
            (400, "invalid_range".into())
        );
        assert_eq!(h("site=nope").status, 403);
        assert_eq!(h("").status, 400);
    }

    #[test]
    fn count_answers_carry_the_record_once_known() {
        let clock = ManualClock::new(1_800_000_000_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        let beat_at = |v: &str, t: &str| {
            let r = block_on_ready(app.handle(
                &store,
                clock.now_ms(),
                &post("/v1/heartbeat", &beat(v, t)),
            ));
            block_on_ready(app.background(&store, clock.now_ms()));
            json(&r)
        };
        assert!(
            beat_at(V1, "a").get("record").is_none(),
            "unknown before the first read"
        );
        clock.advance(1_000);
        let r = beat_at(V2, "b");
        assert_eq!(
            r["record"],
            serde_json::json!({"online": 2, "at": clock.now_ms()})
        );
        let at = clock.now_ms();
        clock.advance(1_000);
        block_on_ready(app.handle(&store, clock.now_ms(), &post("/v1/leave", &beat(V2, "b"))));
        let c = json(&block_on_ready(app.handle(
            &store,
            clock.now_ms(),
            &get("/v1/count", "site=demo"),
        )));
        assert_eq!(c["online"], 1);
        assert_eq!(
            c["record"],
            serde_json::json!({"online": 2, "at": at}),
            "it only rises"
        );
    }

    #[test]
    fn a_crossing_makes_one_webhook_call_across_two_isolates() {
        let clock = ManualClock::new(1_800_000_000_000);
        let store = MemoryStore::new(clock.clone());
        let sites = format!(
            r#"{{"demo":{{"origins":["{ORIGIN}"],"alerts":[{{"above":2,"webhook":"https://hooks.example/secret","cooldown_s":60}}]}}}}"#
        );
        let apps = [
            app_sites(&sites, &[], "iso-a"),
            app_sites(&sites, &[], "iso-b"),
        ];
        let mut calls = Vec::new();
        let visitors: Vec<String> = (0..4u8)
            .map(|i| herenow_core::protocol::visitor_id_from_random([i + 1; 16]))
            .collect();
        // 200 s: the first writer claims the key at the first beat, and a claim's first call
        // waits twice KV's lag (120 s).
        for round in 0..100usize {
            // Up to 4 people, one more each round, heartbeating to either isolate.
            for (i, v) in visitors.iter().enumerate().take(1 + round.min(3)) {
                let app = &apps[(round + i) % 2];
                let r = block_on_ready(app.handle(
                    &store,
                    clock.now_ms(),
                    &post("/v1/heartbeat", &beat(v, "t")),
                ));
                assert_eq!(r.status, 200);
                calls.extend(block_on_ready(app.background(&store, clock.now_ms())));
            }
            clock.advance(2_000);
        }
        assert_eq!(calls.len(), 1, "{calls:?}");
        let body: serde_json::Value = serde_json::from_str(&calls[0].body).expect("json");
        assert_eq!(body["site"], "demo");
        assert_eq!(body["threshold"], 2);
        assert!(body["online"].as_u64().is_some_and(|n| n > 2));
        assert_eq!(calls[0].url, "https://hooks.example/secret");
        assert!(
            !format!("{:?}", calls[0]).contains("secret"),
            "not in Debug"
        );
    }

    #[test]
    fn the_widget_is_html_under_its_own_csp_without_cookies() {
        let store = MemoryStore::new(ManualClock::new(1_800_000_000_000));
        let app = app_sites(
            &format!(r#"{{"demo":{{"origins":["{ORIGIN}"],"public":true}}}}"#),
            &[],
            "iso-a",
        );
        let now = 1_800_000_000_000;
        block_on_ready(app.handle(&store, now, &post("/v1/heartbeat", &beat(V1, "a"))));
        let r =
            block_on_ready(app.handle(&store, now, &get("/v1/widget", "site=demo&x=%3Cscript%3E")));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header_value("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(
            r.header_value("content-security-policy"),
            Some(crate::widget::csp().as_str())
        );
        assert_eq!(r.header_value("set-cookie"), None);
        let html = String::from_utf8(r.body).expect("utf8");
        assert!(html.contains(">1</strong> online now"));
        assert!(!html.contains("<script>alert") && !html.contains("%3Cscript"));
    }
}
