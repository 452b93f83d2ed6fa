//! The Workers entry: converts `worker::Request` to [`HttpRequest`], runs the app, and
//! converts the [`HttpResponse`] back. The app lives for the isolate's lifetime.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{Context, Date, Env, Headers, Method, Request, Response, event};

use crate::app::{App, HttpRequest, HttpResponse};
use crate::config::Config;
use crate::kv::Kv;
use herenow_core::{Error, ErrorKind};

/// The KV binding name in `wrangler.toml`.
pub const KV_BINDING: &str = "PRESENCE";

thread_local! {
    static APP: RefCell<Option<Rc<App>>> = const { RefCell::new(None) };
}

fn isolate_id() -> String {
    let mut bytes = [0u8; 16];
    // A failure leaves zeros plus the time, still unique enough to keep isolates apart.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&(Date::now().as_millis()).to_le_bytes());
    }
    herenow_core::protocol::visitor_id_from_random(bytes)
}

fn app(env: &Env) -> Result<Rc<App>, Error> {
    if let Some(app) = APP.with(|a| a.borrow().clone()) {
        return Ok(app);
    }
    let config = Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
        .map_err(|e| Error::new(ErrorKind::Internal, "bad_config", e.to_string()))?;
    let app = Rc::new(App::new(config, &isolate_id()));
    APP.with(|a| *a.borrow_mut() = Some(app.clone()));
    Ok(app)
}

async fn to_http(mut req: Request) -> Result<HttpRequest, Error> {
    let url = req
        .url()
        .map_err(|e| Error::bad_request("invalid_url", e.to_string()))?;
    let headers = req.headers().clone();
    let get = |name: &str| headers.get(name).ok().flatten();
    let content_length = get("content-length").and_then(|v| v.parse().ok());
    let method = req.method();
    let body = if matches!(method, Method::Post)
        && content_length.is_none_or(|n: u64| n <= herenow_core::protocol::MAX_BODY_BYTES as u64)
    {
        req.bytes()
            .await
            .map_err(|e| Error::bad_request("invalid_body", e.to_string()))?
    } else {
        Vec::new()
    };
    Ok(HttpRequest {
        method: method.to_string(),
        path: url.path().to_owned(),
        query: url.query().unwrap_or("").to_owned(),
        origin: get("origin"),
        content_type: get("content-type"),
        content_length,
        body,
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

async fn handle(req: Request, env: &Env) -> Result<HttpResponse, Error> {
    let app = app(env)?;
    let kv = env
        .kv(KV_BINDING)
        .map_err(|e| Error::new(ErrorKind::Internal, "bad_config", format!("KV binding {KV_BINDING}: {e}")))?;
    let req = to_http(req).await?;
    Ok(app.handle(&Kv(kv), Date::now().as_millis(), &req).await)
}

/// The Workers fetch handler.
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    match handle(req, &env).await {
        Ok(r) => to_response(r),
        Err(e) => to_response(HttpResponse::from_error(&e)),
    }
}
