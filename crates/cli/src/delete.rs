//! `hearth delete NAME...`: removes workloads from a running host (`DELETE
//! /v1/workloads/{name}`), one line per name. What stopping a workload involves is the host's.

use crate::admin_client::{AdminArgs, Response, workload_path};
use crate::{EXIT_FAILED, EXIT_INVALID};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Names of the workloads to remove (`metadata.name`).
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

pub fn main(args: &DeleteArgs) -> ExitCode {
    if args.cluster.url.is_some() {
        if let Some(bad) = args
            .names
            .iter()
            .find(|n| hearth_manifest::dns_label(n).is_err())
        {
            eprintln!("error: `{bad}`: expected a deployment name (a DNS label)");
            return ExitCode::from(EXIT_INVALID);
        }
        return crate::cluster::delete(&args.names, &args.cluster);
    }
    let paths = match args
        .names
        .iter()
        .map(|name| workload_path(name))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(paths) => paths,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let client = match args.admin.client_or_usage_error() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut failed = false;
    for (name, path) in args.names.iter().zip(&paths) {
        match client.delete(path) {
            Ok(response) => match outcome(name, &response) {
                Ok(line) => println!("{line}"),
                Err(line) => {
                    eprintln!("{line}");
                    failed = true;
                }
            },
            // Unreachable or refused: every other name would fail the same way.
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The line to print for an answer: `Ok` on stdout, `Err` on stderr.
fn outcome(name: &str, response: &Response) -> Result<String, String> {
    match response.status {
        200 | 204 => Ok(format!("workload/{name} deleted")),
        404 => Err(format!("error: workload/{name} not found")),
        _ => Err(format!("error: workload/{name}: {}", response.error_text())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Response {
        Response {
            status,
            reason: String::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_become_kubectl_like_lines() {
        let deleted = answer(200, r#"{"name":"web","result":"deleted"}"#);
        assert_eq!(outcome("web", &deleted), Ok("workload/web deleted".into()));
        assert_eq!(
            outcome("web", &answer(404, "no such workload\n")),
            Err("error: workload/web not found".into())
        );
        assert_eq!(
            outcome("web", &answer(500, "cannot stop\n")),
            Err("error: workload/web: cannot stop".into())
        );
    }
}
