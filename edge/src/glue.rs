//! The Workers entry: converts `worker::Request` to [`HttpRequest`], runs the app, and
//! converts the [`HttpResponse`] back. The app lives for the isolate's lifetime.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use herenow_core::protocol::MAX_BODY_BYTES;
use worker::{Context, Date, Delay, Env, Headers, Method, Request, Response, event};

use crate::app::{App, HttpRequest, HttpResponse};
use crate::config::Config;
use crate::kv::Kv;
use herenow_core::{Error, ErrorKind};

/// The KV binding name in `wrangler.toml`.
pub const KV_BINDING: &str = "PRESENCE";

thread_local! {
    static APP: RefCell<Option<Rc<App>>> = const { RefCell::new(None) };
    /// Whether a delayed flush is already scheduled in this isolate.
    static FLUSH_SCHEDULED: Cell<bool> = const { Cell::new(false) };
}

/// Publishes changes that the write spacing held back, after the response, so that a
/// leave shows elsewhere even if no other request reaches this isolate.
fn schedule_flush(ctx: &Context, app: Rc<App>, kv: Kv) {
    let now = Date::now().as_millis();
    let Some(at) = app.service().with(|p| p.next_flush_at()) else {
        return;
    };
    // waitUntil keeps an isolate's event alive for at most 30 s; later flushes wait for
    // the next request (which schedules them once they are near enough).
    if FLUSH_SCHEDULED.with(Cell::get) || at > now + 25_000 {
        return;
    }
    FLUSH_SCHEDULED.with(|f| f.set(true));
    let wait = Duration::from_millis(at.saturating_sub(now) + 5);
    ctx.wait_until(async move {
        Delay::from(wait).await;
        FLUSH_SCHEDULED.with(|f| f.set(false));
        // A failure is retried by the next request; nothing to answer here.
        let _ = app.service().flush(&kv, Date::now().as_millis()).await;
    });
}

fn isolate_id() -> String {
    let mut bytes = [0u8; 16];
    // A failure leaves zeros plus the time, still unique enough to keep isolates apart.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&(Date::now().as_millis()).to_le_bytes());
    }
    herenow_core::protocol::visitor_id_from_random(bytes)
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
    .map_err(|e| Error::new(ErrorKind::Internal, "bad_config", e.to_string()))?;
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
async fn read_body(req: &mut Request) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let Ok(mut stream) = req.stream() else {
        return Ok(out);
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::bad_request("invalid_body", e.to_string()))?;
        out.extend_from_slice(&chunk);
        if out.len() > MAX_BODY_BYTES {
            out.truncate(MAX_BODY_BYTES + 1);
            break;
        }
    }
    Ok(out)
}

async fn to_http(mut req: Request) -> Result<HttpRequest, Error> {
    let url = req
        .url()
        .map_err(|e| Error::bad_request("invalid_url", e.to_string()))?;
    let headers = req.headers().clone();
    let get = |name: &str| headers.get(name).ok().flatten();
    let content_length = get("content-length").and_then(|v| v.parse().ok());
    let method = req.method();
    let body = match (matches!(method, Method::Post), content_length) {
        // A declared small body: one read.
        (true, Some(n)) if n <= MAX_BODY_BYTES as u64 => req
            .bytes()
            .await
            .map_err(|e| Error::bad_request("invalid_body", e.to_string()))?,
        // No declared length: stream, and stop past the limit.
        (true, None) => read_body(&mut req).await?,
        _ => Vec::new(),
    };
    Ok(HttpRequest {
        method: method.to_string(),
        path: url.path().to_owned(),
        query: url.query().unwrap_or("").to_owned(),
        origin: get("origin"),
        content_type: get("content-type"),
        content_length,
        body,
        client_ip: get("cf-connecting-ip"),
    })
}

fn to_response(r: HttpResponse) -> worker::Result<Response> {
    let headers = Headers::new();
    for (k, v) in &r.headers {
        headers.append(k, v)?;
    }
    let resp = if r.body.is_empty() {
        Response::empty()?
    } else {
        Response::from_bytes(r.body)?
    };
    Ok(resp.with_status(r.status).with_headers(headers))
}

async fn handle(req: Request, env: &Env, ctx: &Context) -> Result<HttpResponse, Error> {
    let initialised = APP.with(|a| a.borrow().is_some());
    // The data center is read once, when the isolate's app is made.
    let colo = if initialised {
        None
    } else {
        req.cf().map(|cf| cf.colo())
    };
    let app = app(env, colo)?;
    let kv = Kv(env.kv(KV_BINDING).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            "bad_config",
            format!("KV binding {KV_BINDING}: {e}"),
        )
    })?);
    let req = to_http(req).await?;
    let resp = app.handle(&kv, Date::now().as_millis(), &req).await;
    schedule_flush(ctx, app, kv);
    Ok(resp)
}

/// The static-assets binding in `wrangler.toml` (absent under plain Miniflare).
pub const ASSETS_BINDING: &str = "ASSETS";

/// A page that is neither an asset nor an API route gets the site's 404 page (API routes
/// keep their JSON errors).
async fn not_found_page(env: &Env, url: &str) -> Option<Response> {
    let assets = env.assets(ASSETS_BINDING).ok()?;
    let origin = url.split('/').take(3).collect::<Vec<_>>().join("/");
    let page = assets
        .fetch(format!("{origin}/404.html"), None)
        .await
        .ok()?;
    if page.status_code() != 200 {
        return None;
    }
    Some(page.with_status(404))
}

/// The Workers fetch handler.
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let url = req.url().map(|u| u.to_string()).unwrap_or_default();
    let is_page = req.path() != "/healthz" && !req.path().starts_with("/v1/");
    let resp = match handle(req, &env, &ctx).await {
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
