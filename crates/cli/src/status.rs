//! `hearth status`: asks a running host's admin API for its workloads and prints a table.

use crate::EXIT_FAILED;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

pub fn main(admin: SocketAddr, json: bool) -> ExitCode {
    let body = match fetch(admin, "/v1/workloads") {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "cannot reach the admin API at {admin}: {e}\n(start hearth with `hearth run --admin {admin} ...`)"
            );
            return ExitCode::from(EXIT_FAILED);
        }
    };
    if json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    let workloads: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("the admin API answered something that is not JSON: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    print!("{}", render(&workloads));
    ExitCode::SUCCESS
}

/// One row per component and per service.
fn render(workloads: &serde_json::Value) -> String {
    let mut rows = vec![
        [
            "WORKLOAD",
            "PART",
            "KIND",
            "STATE",
            "ROUTE / PORTS",
            "REQUESTS",
            "RESTARTS",
            "LAST EXIT",
        ]
        .map(String::from),
    ];
    for w in workloads.as_array().into_iter().flatten() {
        let name = w["name"].as_str().unwrap_or("?").to_string();
        for c in w["components"].as_array().into_iter().flatten() {
            let route = match c["route"].as_object() {
                Some(r) => format!(
                    "{}{}",
                    r.get("host").and_then(|h| h.as_str()).unwrap_or("*"),
                    r.get("path").and_then(|p| p.as_str()).unwrap_or("/")
                ),
                None => "-".into(),
            };
            let stats = &c["stats"];
            rows.push([
                name.clone(),
                c["name"].as_str().unwrap_or("?").into(),
                "component".into(),
                "ready".into(),
                route,
                stats["requests"].to_string(),
                "-".into(),
                "-".into(),
            ]);
        }
        if let Some(s) = w["service"].as_object() {
            let ports: Vec<String> = s
                .get("listening")
                .and_then(|l| l.as_array())
                .into_iter()
                .flatten()
                .map(|p| p.to_string())
                .collect();
            rows.push([
                name.clone(),
                "service".into(),
                "service".into(),
                s.get("state")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .into(),
                if ports.is_empty() {
                    "-".into()
                } else {
                    ports.join(",")
                },
                "-".into(),
                s.get("restarts").map_or("0".into(), |v| v.to_string()),
                s.get("lastExit")
                    .and_then(|v| v.as_str())
                    .unwrap_or("-")
                    .into(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A plain HTTP/1.1 GET over loopback; the admin API is local and tiny.
fn fetch(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or_default().to_string(),
        ));
    }
    Ok(body.to_string())
}
