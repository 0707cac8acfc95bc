//! `hearth status`: asks a running host's admin API for its workloads and prints a table
//! with one row per component and per service. Talking to the host is [`crate::admin_client`]'s.

use crate::EXIT_FAILED;
use crate::admin_client::AdminArgs;
use std::process::ExitCode;

pub fn main(admin: &AdminArgs, json: bool) -> ExitCode {
    match workloads(admin) {
        Ok(body) if json => {
            println!("{}", body.trim_end());
            ExitCode::SUCCESS
        }
        Ok(body) => match serde_json::from_str(&body) {
            Ok(workloads) => {
                print!("{}", render(&workloads));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: the admin API answered something that is not JSON: {e}");
                ExitCode::from(EXIT_FAILED)
            }
        },
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The body of `GET /v1/workloads`, or what to tell the user.
pub(crate) fn workloads(admin: &AdminArgs) -> Result<String, String> {
    let client = admin.client().map_err(|e| e.to_string())?;
    let response = client.get("/v1/workloads").map_err(|e| e.to_string())?;
    if response.status == 200 {
        Ok(response.text())
    } else {
        Err(format!(
            "the admin API at {} answered {}: {}",
            client.addr(),
            response.status,
            response.error_text()
        ))
    }
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
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    crate::table::render(&rows)
}
