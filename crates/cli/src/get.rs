//! `hearth get [NAME]`: the workloads of a running host (`GET /v1/workloads[/{name}]`) as a
//! table, a wide table, JSON or YAML, like `kubectl get`.
//!
//! The answer is read into a `serde_yaml::Value`, whose mappings keep the server's key order,
//! so `-o json` and `-o yaml` print the fields in the order the host wrote them. Every field
//! may be missing (older or newer hosts): a missing cell shows `-`.

use crate::admin_client::{AdminArgs, workload_path};
use crate::{EXIT_FAILED, EXIT_INVALID};
use serde_yaml::Value;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// Show only this workload (`metadata.name`); with --cluster, what to list:
    /// `deployments`, `replicas` or `hosts`.
    pub name: Option<String>,
    /// With --cluster: show only this deployment.
    pub filter: Option<String>,
    /// Output format; default: a table.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

/// `-o`: what to print instead of the default table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The host's JSON, indented.
    Json,
    /// The host's JSON as YAML.
    Yaml,
    /// The table with the service's restarts and ports, and the manifest file.
    Wide,
}

pub fn main(args: &GetArgs) -> ExitCode {
    if args.cluster.url.is_some() {
        return crate::cluster::get(
            args.name.as_deref(),
            args.filter.as_deref(),
            args.output,
            &args.cluster,
        );
    }
    if let Some(extra) = &args.filter {
        eprintln!("error: `{extra}`: a host's `get` takes one NAME (two are for --cluster)");
        return ExitCode::from(EXIT_INVALID);
    }
    match fetch(args).and_then(|answer| format(&answer, args.output)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(Failure::Invalid(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Why `get` printed nothing, and which exit status that is.
#[derive(Debug, PartialEq)]
enum Failure {
    /// A usage problem (a bad name, a token that cannot be loaded).
    Invalid(String),
    /// The host could not be asked, or said no.
    Failed(String),
}

/// The host's answer, parsed.
fn fetch(args: &GetArgs) -> Result<Value, Failure> {
    let path = match &args.name {
        Some(name) => workload_path(name).map_err(Failure::Invalid)?,
        None => "/v1/workloads".to_string(),
    };
    let client = args
        .admin
        .client()
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    let response = client
        .get(&path)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    match (response.status, &args.name) {
        (200, _) => {}
        (404, Some(name)) => return Err(Failure::Failed(format!("workload/{name} not found"))),
        (status, _) => {
            return Err(Failure::Failed(format!(
                "the admin API at {} answered {status}: {}",
                client.addr(),
                response.error_text()
            )));
        }
    }
    serde_json::from_slice(&response.body).map_err(|e| {
        Failure::Failed(format!(
            "the admin API at {} answered something that is not JSON: {e}",
            client.addr()
        ))
    })
}

/// The text to print for `answer` (one workload or a list) in `output`.
fn format(answer: &Value, output: Option<Output>) -> Result<String, Failure> {
    let failed =
        |e: &dyn std::fmt::Display| Failure::Failed(format!("cannot print the answer: {e}"));
    match output {
        Some(Output::Json) => serde_json::to_string_pretty(answer)
            .map(|text| text + "\n")
            .map_err(|e| failed(&e)),
        Some(Output::Yaml) => serde_yaml::to_string(answer).map_err(|e| failed(&e)),
        None => Ok(table(answer, false)),
        Some(Output::Wide) => Ok(table(answer, true)),
    }
}

const COLUMNS: [&str; 6] = [
    "NAME",
    "COMPONENTS",
    "ROUTES",
    "SERVICE",
    "REQUESTS",
    "GENERATION",
];
const WIDE_COLUMNS: [&str; 4] = ["RESTARTS", "PORTS", "PUBLISHED", "SOURCE"];

/// One row per workload; `answer` is a list of statuses or a single one.
fn table(answer: &Value, wide: bool) -> String {
    let workloads = match answer {
        Value::Sequence(list) => list.as_slice(),
        single => std::slice::from_ref(single),
    };
    let mut header: Vec<String> = COLUMNS.map(String::from).to_vec();
    if wide {
        header.extend(WIDE_COLUMNS.map(String::from));
    }
    let mut rows = vec![header];
    rows.extend(workloads.iter().map(|w| row(w, wide)));
    crate::table::render(&rows)
}

fn row(w: &Value, wide: bool) -> Vec<String> {
    let components = w["components"].as_sequence().map_or(&[][..], Vec::as_slice);
    let service = &w["service"];
    let mut cells = vec![
        text(&w["name"]),
        components.len().to_string(),
        or_dash(components.iter().filter_map(route).collect()),
        text(&service["state"]),
        requests(components),
        text(&w["generation"]),
    ];
    if wide {
        cells.extend([
            text(&service["restarts"]),
            or_dash(list(&service["listening"]).map(text).collect()),
            or_dash(list(&service["published"]).map(published).collect()),
            text(&w["source"]),
        ]);
    }
    cells
}

/// A component's route as `host/path` (`*` for any host), as route conflicts name it.
fn route(component: &Value) -> Option<String> {
    let route = component["route"].as_mapping()?;
    let host = route.get("host").and_then(Value::as_str);
    let path = route.get("path").and_then(Value::as_str).unwrap_or("/");
    Some(hearth_manifest::RouteKey::new(host, path).to_string())
}

/// The sum of the components' request counts, or `-` when none reports one.
fn requests(components: &[Value]) -> String {
    let counts: Vec<u64> = components
        .iter()
        .filter_map(|c| c["stats"]["requests"].as_u64())
        .collect();
    if counts.is_empty() {
        "-".into()
    } else {
        counts.iter().sum::<u64>().to_string()
    }
}

/// A published port as `HOST:PORT->PORT` (host address first, as Docker shows it).
fn published(p: &Value) -> String {
    format!("{}->{}", text(&p["host"]), text(&p["port"]))
}

fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_sequence().into_iter().flatten()
}

/// A scalar as a cell; missing or null is `-`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "-".into(),
    }
}

fn or_dash(items: Vec<String>) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two workloads as a host reports them: one complete (with the new fields), one with
    /// only a name.
    const SAMPLE: &str = r#"[
      {
        "name": "shop",
        "source": "/srv/shop/app.yaml",
        "generation": 3,
        "created": "2025-01-02T03:04:05Z",
        "components": [
          {"name": "site", "route": {"path": "/"}, "limits": {},
           "stats": {"requests": 40, "inFlight": 0, "rejected": 0, "failed": 0, "timedOut": 0}},
          {"name": "api", "route": {"host": "API.example.com", "path": "/v1/"},
           "stats": {"requests": 2}},
          {"name": "worker", "route": null, "stats": {"requests": 0}}
        ],
        "service": {"state": "running", "restarts": 1, "lastExit": null,
                    "listening": [5432, 6379],
                    "published": [{"port": 5432, "host": "127.0.0.1:15432"}]}
      },
      {"name": "bare"}
    ]"#;

    fn sample() -> Value {
        serde_json::from_str(SAMPLE).unwrap()
    }

    #[test]
    fn the_table_has_one_row_per_workload_and_dashes_for_missing_fields() {
        assert_eq!(
            table(&sample(), false),
            "\
NAME  COMPONENTS  ROUTES                 SERVICE  REQUESTS  GENERATION
shop  3           */,api.example.com/v1  running  42        3
bare  0           -                      -        -         -
"
        );
    }

    #[test]
    fn the_wide_table_adds_restarts_ports_published_and_source() {
        let wide = table(&sample(), true);
        let lines: Vec<&str> = wide.lines().collect();
        assert_eq!(
            lines[0],
            "NAME  COMPONENTS  ROUTES                 SERVICE  REQUESTS  GENERATION  RESTARTS  PORTS      PUBLISHED              SOURCE"
        );
        assert_eq!(
            lines[1],
            "shop  3           */,api.example.com/v1  running  42        3           1         5432,6379  127.0.0.1:15432->5432  /srv/shop/app.yaml"
        );
        assert_eq!(
            lines[2],
            "bare  0           -                      -        -         -           -         -          -                      -"
        );
    }

    #[test]
    fn a_single_workload_is_one_row() {
        let one = &sample()[1];
        assert_eq!(
            table(one, false).lines().nth(1),
            Some("bare  0           -       -        -         -")
        );
    }

    #[test]
    fn json_and_yaml_keep_the_hosts_field_order() {
        let one: Value =
            serde_json::from_str(r#"{"name": "web", "source": "a.yaml", "generation": 2}"#)
                .unwrap();
        assert_eq!(
            format(&one, Some(Output::Json)).unwrap(),
            "{\n  \"name\": \"web\",\n  \"source\": \"a.yaml\",\n  \"generation\": 2\n}\n"
        );
        assert_eq!(
            format(&one, Some(Output::Yaml)).unwrap(),
            "name: web\nsource: a.yaml\ngeneration: 2\n"
        );
    }
}
