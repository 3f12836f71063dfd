//! Routes of the HTTP API: route keys, path templates (`{param}`, `{proxy+}`) and finding
//! the most specific route for a request.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use axum::http::Method;

use super::HttpRoute;
use super::authorizer::RoutePolicy;

/// One segment of a route path.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

#[derive(Debug)]
pub(super) struct CompiledRoute {
    pub(super) route: HttpRoute,
    /// Throttle and authorizer of the route.
    pub(super) policy: RoutePolicy,
    /// None for `$default`.
    segments: Option<Vec<Segment>>,
}

fn split_path(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

pub(super) fn compile(route: HttpRoute) -> Result<CompiledRoute> {
    if route.path == "$default" {
        return Ok(CompiledRoute {
            route,
            policy: RoutePolicy::default(),
            segments: None,
        });
    }
    if !route.path.starts_with('/') {
        bail!("HttpApi path {:?} must start with /", route.path);
    }
    let parts = split_path(&route.path);
    let mut segments = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => match name.strip_suffix('+') {
                Some(greedy) if i + 1 == parts.len() => Segment::Greedy(greedy.to_string()),
                Some(_) => bail!("greedy parameter must be last in {:?}", route.path),
                None => Segment::Param(name.to_string()),
            },
            None => Segment::Literal(part.to_string()),
        };
        segments.push(segment);
    }
    Ok(CompiledRoute {
        route,
        policy: RoutePolicy::default(),
        segments: Some(segments),
    })
}

/// Matches a request path against route segments, returning path parameters.
fn match_segments(segments: &[Segment], path: &str) -> Option<BTreeMap<String, String>> {
    let parts = split_path(path);
    let mut params = BTreeMap::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Literal(text) => {
                if parts.get(i) != Some(&text.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => {
                let value = parts.get(i).filter(|p| !p.is_empty())?;
                params.insert(name.clone(), percent_decode(value));
            }
            Segment::Greedy(name) => {
                let rest = parts.get(i..)?.join("/");
                if rest.is_empty() {
                    return None;
                }
                params.insert(name.clone(), percent_decode(&rest));
                return Some(params);
            }
        }
    }
    (parts.len() == segments.len()).then_some(params)
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are).
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Specificity of a route match (higher wins): (not `$default`, literal segments,
/// no greedy parameter, specific method).
type RouteScore = (usize, usize, bool, bool);
/// Path parameters of a matched route.
pub(super) type PathParameters = BTreeMap<String, String>;

/// The most specific route for a request (literal segments beat parameters, which beat
/// greedy parameters; a specific method beats ANY; `$default` comes last).
pub(super) fn find<'a>(
    routes: &'a [CompiledRoute],
    method: &Method,
    path: &str,
) -> Option<(&'a CompiledRoute, PathParameters)> {
    let mut best: Option<(RouteScore, &CompiledRoute, PathParameters)> = None;
    for compiled in routes {
        let method_matches = compiled
            .route
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()));
        if !method_matches {
            continue;
        }
        let (score, params) = match &compiled.segments {
            None => ((0, 0, false, false), BTreeMap::new()),
            Some(segments) => {
                let Some(params) = match_segments(segments, path) else {
                    continue;
                };
                let literals = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                let not_greedy = !segments.iter().any(|s| matches!(s, Segment::Greedy(_)));
                (
                    (1, literals, not_greedy, compiled.route.method.is_some()),
                    params,
                )
            }
        };
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, compiled, params));
        }
    }
    best.map(|(_, route, params)| (route, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matching_with_parameters() {
        let segments = vec![
            Segment::Literal("alerts".into()),
            Segment::Param("id".into()),
        ];
        let params = match_segments(&segments, "/alerts/a%2Fb").unwrap();
        assert_eq!(params.get("id").map(String::as_str), Some("a/b"));
        assert!(match_segments(&segments, "/alerts").is_none());
        assert!(match_segments(&segments, "/alerts/1/x").is_none());
        let greedy = vec![Segment::Greedy("proxy".into())];
        assert_eq!(
            match_segments(&greedy, "/a/b")
                .unwrap()
                .get("proxy")
                .map(String::as_str),
            Some("a/b")
        );
    }
}
