//! Routing and handlers over plain request/response values and any [`Store`], so that
//! they run natively in tests on the memory store. The Workers glue (`glue.rs`) only
//! converts `worker::Request` to [`HttpRequest`] and [`HttpResponse`] back.

use herenow_core::engine::Presence;
use herenow_core::protocol::{MAX_BODY_BYTES, normalize_page, parse_beat, validate_site};
use herenow_core::service::Service;
use herenow_core::store::Store;
use herenow_core::{Error, ErrorKind};

use crate::config::Config;

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

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The response for an error: its status, JSON body and `Retry-After` if any.
    #[must_use]
    pub fn from_error(e: &Error) -> Self {
        let r = Self::json(e.status(), e.to_json());
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
}

/// The value of `key` in a query string, percent-decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k).as_deref() == Some(key)).then(|| percent_decode(v))?
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn not_found() -> Error {
    Error::new(ErrorKind::NotFound, "not_found", "no such route")
}

fn method_not_allowed(allow: &str) -> Error {
    Error::new(
        ErrorKind::MethodNotAllowed,
        "method_not_allowed",
        format!("this route allows {allow}"),
    )
}

impl App {
    /// An app for `config`, in an isolate named `isolate` (a random id).
    #[must_use]
    pub fn new(config: Config, isolate: &str) -> Self {
        let service = Service::new(Presence::new(isolate, config.engine.clone()));
        Self { config, service }
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

    /// Handles one request at time `now` (Unix ms). Never panics on any input: every path
    /// ends in a response.
    pub async fn handle<S: Store>(&self, store: &S, now: u64, req: &HttpRequest) -> HttpResponse {
        let cors_origin = req
            .origin
            .as_deref()
            .filter(|o| self.config.any_site_allows(o))
            .map(str::to_owned);
        let mut resp = match self.route(store, now, req).await {
            Ok(r) => r,
            Err(e) => HttpResponse::from_error(&e),
        };
        if req.path.starts_with("/v1/") {
            resp = resp.header("vary", "Origin");
            if let Some(o) = cors_origin {
                resp = resp
                    .header("access-control-allow-origin", o)
                    .header("access-control-allow-methods", "GET, POST, OPTIONS")
                    .header("access-control-allow-headers", "content-type")
                    .header("access-control-max-age", "86400");
            }
        }
        resp
    }

    async fn route<S: Store>(&self, store: &S, now: u64, req: &HttpRequest) -> Result<HttpResponse, Error> {
        let method = req.method.as_str();
        match req.path.as_str() {
            "/healthz" => match method {
                "GET" | "HEAD" => Ok(HttpResponse::json(200, r#"{"ok":true}"#.to_owned())),
                _ => Err(method_not_allowed("GET, HEAD")),
            },
            "/v1/heartbeat" | "/v1/leave" => match method {
                "POST" => self.post_beat(store, now, req).await,
                "OPTIONS" => self.preflight(req),
                _ => Err(method_not_allowed("POST, OPTIONS")),
            },
            "/v1/count" => match method {
                "GET" | "HEAD" => self.get_count(store, now, req).await,
                "OPTIONS" => self.preflight(req),
                _ => Err(method_not_allowed("GET, HEAD, OPTIONS")),
            },
            _ => Err(not_found()),
        }
    }

    fn preflight(&self, req: &HttpRequest) -> Result<HttpResponse, Error> {
        match req.origin.as_deref() {
            Some(o) if self.config.any_site_allows(o) => Ok(HttpResponse::new(204)),
            _ => Err(Error::new(
                ErrorKind::Forbidden,
                "origin_not_allowed",
                "this origin is not allowed by any site",
            )),
        }
    }

    fn check_site(&self, site: &str, origin: Option<&str>) -> Result<(), Error> {
        validate_site(site)?;
        let Some(conf) = self.config.site(site) else {
            return Err(Error::new(
                ErrorKind::Forbidden,
                "unknown_site",
                format!("site {site:?} is not configured"),
            ));
        };
        if let Some(o) = origin {
            if !conf.origins.iter().any(|a| a == o) {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    "origin_not_allowed",
                    format!("origin {o:?} is not allowed for site {site:?}"),
                ));
            }
        }
        Ok(())
    }

    async fn post_beat<S: Store>(&self, store: &S, now: u64, req: &HttpRequest) -> Result<HttpResponse, Error> {
        if req.content_length.is_some_and(|n| n > MAX_BODY_BYTES as u64) || req.body.len() > MAX_BODY_BYTES {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                "body_too_large",
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
                ErrorKind::UnsupportedMediaType,
                "unsupported_media_type",
                "content-type must be application/json or text/plain",
            ));
        }
        let beat = parse_beat(&req.body)?;
        self.check_site(&beat.site, req.origin.as_deref())?;
        if req.path == "/v1/leave" {
            self.service.leave(store, now, &beat).await?;
            return Ok(HttpResponse::new(204));
        }
        let resp = self.service.heartbeat(store, now, &beat, None).await?;
        let body = serde_json::to_string(&resp)
            .map_err(|e| Error::new(ErrorKind::Internal, "internal", e.to_string()))?;
        Ok(HttpResponse::json(200, body))
    }

    async fn get_count<S: Store>(&self, store: &S, now: u64, req: &HttpRequest) -> Result<HttpResponse, Error> {
        let site = query_param(&req.query, "site")
            .ok_or_else(|| Error::bad_request("invalid_site", "query parameter site is required"))?;
        self.check_site(&site, None)?;
        let page = query_param(&req.query, "page").map(|p| normalize_page(&p)).transpose()?;
        let count = self.service.count(store, now, &site, page.as_deref()).await?;
        let body = serde_json::to_string(&count)
            .map_err(|e| Error::new(ErrorKind::Internal, "internal", e.to_string()))?;
        Ok(HttpResponse::json(200, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herenow_core::store::{ManualClock, MemoryStore, block_on_ready};

    const V1: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
    const V2: &str = "6fa459ea-ee8a-4ca4-894e-db77e160355e";
    const ORIGIN: &str = "http://127.0.0.1:8787";

    fn app() -> App {
        let sites = format!(r#"{{"demo":{{"origins":["{ORIGIN}"]}}}}"#);
        let config = Config::from_lookup(|k| (k == "SITES").then(|| sites.clone())).expect("config");
        App::new(config, "iso-a")
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
        assert_eq!((json(&r)["online"].clone(), json(&r)["tabs"].clone()), (1.into(), 2.into()));
        assert_eq!(r.header_value("access-control-allow-origin"), Some(ORIGIN));
        let r = run(post("/v1/heartbeat", &beat(V2, "c")));
        assert_eq!(json(&r)["online"], 2);
        assert_eq!(json(&r)["next_heartbeat_ms"], 15_000);
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
            (post("/v1/heartbeat", &beat("nope", "a")), 400, "invalid_visitor"),
            (post("/v1/heartbeat", &beat(V1, "a").replace("demo", "other")), 403, "unknown_site"),
            (evil, 403, "origin_not_allowed"),
            (wrong_type, 415, "unsupported_media_type"),
            (post("/v1/heartbeat", &" ".repeat(5000)), 413, "body_too_large"),
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
    fn steady_heartbeats_cost_no_write_each() {
        let clock = ManualClock::new(1_000_000);
        let store = MemoryStore::new(clock.clone());
        let app = app();
        for i in 0..100 {
            let r = block_on_ready(app.handle(&store, clock.now_ms(), &post("/v1/heartbeat", &beat(V1, "a"))));
            assert_eq!(r.status, 200, "beat {i}");
            clock.advance(15_000);
        }
        // 25 minutes of heartbeats: one join, then only lease renewals (every ~200 s).
        let writes = store.ops().writes;
        assert!(writes <= 1 + 25 * 60 / 200 + 1, "{writes} writes for 100 heartbeats");
    }

    #[test]
    fn store_failure_is_503_with_retry_after() {
        let clock = ManualClock::new(1_000_000);
        let store = MemoryStore::new(clock.clone());
        store.set_failing(true);
        let r = block_on_ready(app().handle(&store, clock.now_ms(), &post("/v1/heartbeat", &beat(V1, "a"))));
        assert_eq!(r.status, 503);
        assert!(r.header_value("retry-after").is_some());
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
        assert_eq!(query_param("site=de%6Do&page=%2Fa%20b", "page").as_deref(), Some("/a b"));
        assert_eq!(query_param("site=%zz", "site"), None);
    }
}
