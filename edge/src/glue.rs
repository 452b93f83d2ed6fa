//! The Workers entry: converts the runtime's request to [`HttpRequest`], runs the app, and
//! converts the [`HttpResponse`] back. The app lives for the isolate's lifetime.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use herenow_core::protocol::MAX_BODY_BYTES;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Context, Date, Delay, Env, Request, event, js_sys, web_sys};

use crate::app::{App, HttpRequest, HttpResponse, Outgoing, path_and_query};
use crate::cache::{self, Channel, Stores};
use crate::config::Config;
use crate::kv::Kv;
use herenow_core::history::alerts::{ATTEMPT_TIMEOUT_MS, RETRY_DELAYS_MS};
use herenow_core::{Code, Error};

/// The KV binding name in `wrangler.toml`.
pub const KV_BINDING: &str = "PRESENCE";

thread_local! {
    static APP: RefCell<Option<Rc<App>>> = const { RefCell::new(None) };
}

/// Publishes changes that the write spacing held back, after the response, so that a
/// leave shows elsewhere even if no other request reaches this isolate. When, and which
/// flushes are needed, is the driver's (`Service::flush_timer`); the glue only waits.
fn schedule_flush(ctx: &Context, app: Rc<App>, store: Stores) {
    let now = Date::now().as_millis();
    let Some(first) = app.service().flush_timer(now) else {
        return;
    };
    ctx.wait_until(async move {
        let mut timer = Some(first);
        while let Some(t) = timer {
            let wait = t.at.saturating_sub(Date::now().as_millis());
            Delay::from(Duration::from_millis(wait)).await;
            timer = app
                .service()
                .flush_timer_fired(&store, t, Date::now().as_millis())
                .await;
        }
    });
}

/// The history's reads and writes after the response, and the webhook calls of alerts that
/// fired, in `waitUntil`: nothing of it delays or fails a heartbeat. What is
/// due is the history driver's call (`App::background_due`); the glue only runs it.
fn schedule_history(ctx: &Context, app: Rc<App>, store: Stores) {
    if !app.background_due(Date::now().as_millis()) {
        return;
    }
    ctx.wait_until(async move {
        let calls = app.background(&store, Date::now().as_millis()).await;
        // At once, so that each has its whole retry schedule within the event's 30 s.
        futures_util::future::join_all(calls.into_iter().map(send_alert)).await;
    });
}

/// How long a request waits for the isolate's first probe of the Cache API that another
/// request started (2 cache calls: milliseconds), before it goes on without the channel.
const FIRST_PROBE_WAIT_MS: u64 = 1_000;

/// Runs the probe `app` has due at `origin`, if any, and records its outcome.
async fn probe(app: &App, origin: &str) {
    let probe = app.channel_probe();
    let now = Date::now().as_millis();
    if !probe.due(now) {
        return;
    }
    let isolate = app.service().with(|p| p.isolate().to_owned());
    if let Some(run) = probe.start(now, origin, &isolate, random_bytes().to_vec()) {
        let got = cache::run_probe(&run).await;
        probe.finish(Date::now().as_millis(), &run, got.as_deref());
    }
}

/// The per-location channel for this request, if the probe found it working. An isolate's
/// first request runs the first probe before it touches the store (and requests that
/// arrive meanwhile wait for it), so that the engine starts in the mode it keeps: a switch
/// rebuilds its view with a listing.
async fn channel(app: &App, origin: Option<&str>) -> Option<Channel> {
    let probe = app.channel_probe();
    if probe.unsettled()
        && let Some(origin) = origin
    {
        if probe.due(Date::now().as_millis()) {
            self::probe(app, origin).await;
        } else {
            let until = Date::now().as_millis() + FIRST_PROBE_WAIT_MS;
            while probe.unsettled() && Date::now().as_millis() < until {
                Delay::from(Duration::from_millis(5)).await;
            }
        }
    }
    Channel::open(&probe.channel_origin()?)
}

/// Probes the Cache API again after the response, when due (every
/// [`cache::PROBE_EVERY_MS`]): the channel goes off if it stopped working.
fn schedule_probe(ctx: &Context, app: Rc<App>, origin: Option<&str>) {
    let Some(origin) = origin.map(str::to_owned) else {
        return;
    };
    if !app.channel_probe().due(Date::now().as_millis()) {
        return;
    }
    ctx.wait_until(async move { probe(&app, &origin).await });
}

/// POSTs one alert, retrying a failure (no answer within [`ATTEMPT_TIMEOUT_MS`], or not 2xx)
/// after each of [`RETRY_DELAYS_MS`], then gives up.
async fn send_alert(call: Outgoing) {
    for attempt in 0..=RETRY_DELAYS_MS.len() {
        if let Some(wait) = attempt.checked_sub(1).and_then(|i| RETRY_DELAYS_MS.get(i)) {
            Delay::from(Duration::from_millis(*wait)).await;
        }
        let post = Box::pin(post_once(&call));
        let deadline = Box::pin(Delay::from(Duration::from_millis(ATTEMPT_TIMEOUT_MS)));
        if let Either::Left((true, _)) = select(post, deadline).await {
            return;
        }
    }
}

async fn post_once(call: &Outgoing) -> bool {
    let headers = worker::Headers::new();
    if headers.set("content-type", "application/json").is_err() {
        return false;
    }
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&call.body)));
    let Ok(req) = Request::new_with_init(&call.url, &init) else {
        return false;
    };
    match worker::Fetch::Request(req).send().await {
        Ok(resp) => (200..300).contains(&resp.status_code()),
        Err(_) => false,
    }
}

/// 16 fresh random bytes: an isolate's id, a probe's nonce. A failure leaves zeros plus
/// the time, still unique enough to keep isolates and probes apart.
fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&(Date::now().as_millis()).to_le_bytes());
    }
    bytes
}

fn isolate_id() -> String {
    herenow_core::protocol::visitor_id_from_random(random_bytes())
}

fn app(env: &Env, colo: Option<String>) -> Result<Rc<App>, Error> {
    if let Some(app) = APP.with(|a| a.borrow().clone()) {
        return Ok(app);
    }
    let mut config = Config::from_lookup(|name| {
        env.var(name)
            .ok()
            .map(|v| v.to_string())
            .or_else(|| env.secret(name).ok().map(|v| v.to_string()))
    })
    .map_err(|e| Error::new(Code::BadConfig, e.to_string()))?;
    if config.location.is_none() {
        config.location = colo.filter(|c| !c.is_empty() && c.len() <= 32);
    }
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let seed = u64::from_le_bytes(seed) ^ Date::now().as_millis();
    let app = Rc::new(App::new(config, &isolate_id(), seed));
    APP.with(|a| *a.borrow_mut() = Some(app.clone()));
    Ok(app)
}

/// Reads at most one byte past [`MAX_BODY_BYTES`]: enough for the app to answer 413,
/// without buffering a large (or chunked, length-less) body.
async fn read_body(req: web_sys::Request) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let Ok(mut stream) = Request::from(req).stream() else {
        return Ok(out);
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::new(Code::InvalidBody, e.to_string()))?;
        out.extend_from_slice(&chunk);
        if out.len() > MAX_BODY_BYTES {
            out.truncate(MAX_BODY_BYTES + 1);
            break;
        }
    }
    Ok(out)
}

/// A declared small body, read in one go.
async fn read_declared_body(req: &web_sys::Request) -> Result<Vec<u8>, Error> {
    let invalid = |e: JsValue| Error::new(Code::InvalidBody, format!("{e:?}"));
    let promise = req.array_buffer().map_err(invalid)?;
    let buffer = JsFuture::from(promise).await.map_err(invalid)?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The body of a POST whose head declared `content_length`: read in one go when it is
/// declared small, streamed (and cut past the limit) when no length is declared, left
/// unread when it is declared too large (the app answers 413).
///
/// The read races a timer of `timeout_ms`: a body that has not fully arrived by then (a
/// slow or stalled client, a slow-loris attack) is a 408 `slow_body`. workerd itself
/// waits for a body as long as the connection stays open, and an isolate holding such
/// requests would keep them (and their memory) indefinitely.
async fn read_post_body(
    req: web_sys::Request,
    content_length: Option<u64>,
    timeout_ms: u64,
) -> Result<Vec<u8>, Error> {
    let read = Box::pin(async move {
        match content_length {
            // A declared small body: one read.
            Some(n) if n <= MAX_BODY_BYTES as u64 => read_declared_body(&req).await,
            // No declared length: stream, and stop past the limit.
            None => read_body(req).await,
            // Declared too large: refused unread.
            Some(_) => Ok(Vec::new()),
        }
    });
    let deadline = Box::pin(Delay::from(Duration::from_millis(timeout_ms)));
    match select(read, deadline).await {
        Either::Left((body, _)) => body,
        Either::Right(((), _)) => Err(Error::new(
            Code::SlowBody,
            format!("the request body did not arrive within {timeout_ms} ms"),
        )),
    }
}

/// The request's method, path, query and headers as an [`HttpRequest`] with no body yet.
/// It works on `web_sys::Request` directly: the `worker` crate's `Request` reads
/// `request.cf` on every request, which the runtime builds anew on each read (a tenth of
/// a heartbeat's time in a profile).
fn head(req: &web_sys::Request, url: &str) -> HttpRequest {
    let headers = req.headers();
    let get = |name: &str| headers.get(name).ok().flatten();
    let (path, query) = path_and_query(url);
    HttpRequest {
        method: req.method(),
        path: path.to_owned(),
        query: query.to_owned(),
        origin: get("origin"),
        content_type: get("content-type"),
        content_length: get("content-length").and_then(|v| v.parse().ok()),
        body: Vec::new(),
        client_ip: get("cf-connecting-ip"),
        authorization: get("authorization"),
    }
}

/// The data center serving the request (`request.cf.colo`), if the runtime says.
fn colo(req: &web_sys::Request) -> Option<String> {
    let cf = js_sys::Reflect::get(req, &JsValue::from_str("cf")).ok()?;
    if cf.is_undefined() || cf.is_null() {
        return None;
    }
    js_sys::Reflect::get(&cf, &JsValue::from_str("colo"))
        .ok()?
        .as_string()
}

/// Builds the runtime's response directly (one `Headers`, one `Response`).
fn to_response(r: HttpResponse) -> worker::Result<web_sys::Response> {
    let headers = web_sys::Headers::new()?;
    for (k, v) in &r.headers {
        headers.append(k, v)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(r.status);
    init.set_headers(&headers);
    let mut body = r.body;
    let body = (!body.is_empty()).then_some(body.as_mut_slice());
    Ok(web_sys::Response::new_with_opt_u8_array_and_init(
        body, &init,
    )?)
}

async fn handle(
    req: web_sys::Request,
    mut http: HttpRequest,
    origin: Option<&str>,
    env: &Env,
    ctx: &Context,
) -> Result<HttpResponse, Error> {
    let initialised = APP.with(|a| a.borrow().is_some());
    // The data center is read once, when the isolate's app is made.
    let colo = if initialised { None } else { colo(&req) };
    let app = app(env, colo)?;
    let kv = Kv(env
        .kv(KV_BINDING)
        .map_err(|e| Error::new(Code::BadConfig, format!("KV binding {KV_BINDING}: {e}")))?);
    if let Some(refused) = app.admit(Date::now().as_millis(), &http) {
        return Ok(refused);
    }
    if http.method == "POST" {
        let timeout_ms = app.config().body_timeout_ms;
        match read_post_body(req, http.content_length, timeout_ms).await {
            Ok(body) => http.body = body,
            Err(e) => return Ok(app.error_response(&http, &e)),
        }
    }
    let store = Stores {
        kv,
        channel: channel(&app, origin).await,
    };
    let resp = app
        .handle_admitted(&store, Date::now().as_millis(), &http)
        .await;
    schedule_probe(ctx, app.clone(), origin);
    schedule_flush(ctx, app.clone(), store.clone());
    schedule_history(ctx, app, store);
    Ok(resp)
}

/// The static-assets binding in `wrangler.toml` (absent under plain Miniflare).
pub const ASSETS_BINDING: &str = "ASSETS";

/// A page that is neither an asset nor an API route gets the site's 404 page (API routes
/// keep their JSON errors).
async fn not_found_page(env: &Env, url: &str) -> Option<web_sys::Response> {
    let assets = env.assets(ASSETS_BINDING).ok()?;
    let origin = url.split('/').take(3).collect::<Vec<_>>().join("/");
    let page = assets
        .fetch(format!("{origin}/404.html"), None)
        .await
        .ok()?;
    if page.status_code() != 200 {
        return None;
    }
    web_sys::Response::from(page.with_status(404)).into()
}

/// The Workers fetch handler.
#[event(fetch)]
pub async fn fetch(
    req: web_sys::Request,
    env: Env,
    ctx: Context,
) -> worker::Result<web_sys::Response> {
    let url = req.url();
    let http = head(&req, &url);
    let is_page = http.path != "/healthz" && !http.path.starts_with("/v1/");
    let resp = match handle(req, http, cache::origin_of(&url), &env, &ctx).await {
        Ok(r) => r,
        Err(e) => HttpResponse::from_error(&e),
    };
    if resp.status == 404
        && is_page
        && let Some(page) = not_found_page(&env, &url).await
    {
        return Ok(page);
    }
    to_response(resp)
}
