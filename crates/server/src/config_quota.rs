//! The quota options (docs/protocol.md §8.1-8.2): `--quotas off|aws`, `--quota
//! SCOPE.OPERATION=RATE` and the file's `[quota.account]` / `[quota.channel]` tables, parsed into
//! [`QuotaOverride`]s with one set of bounds whichever of the two they came from.

use kvs_core::quota::{QuotaMode, QuotaOp, Scope};

pub(crate) fn quota_mode(s: String) -> QuotaMode {
    match s.as_str() {
        "aws" => QuotaMode::Aws,
        _ => QuotaMode::Off,
    }
}

/// Highest rate a quota may be set to, requests per second.
const MAX_QUOTA_RATE: f64 = 1_000_000.0;
/// Lowest non-zero rate (the limiter's period is at most a day, docs/protocol.md §8.1).
const MIN_QUOTA_RATE: f64 = 0.001;

/// One operator override of a quota: `--quota channel.ConnectAsMaster=10`, or
/// `[quota.channel] ConnectAsMaster = 10` in the file. A rate of 0 removes the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaOverride {
    pub scope: Scope,
    pub op: QuotaOp,
    /// Requests per second; 0 removes the limit.
    pub rate: f64,
}

fn quota_scope(s: &str) -> Result<Scope, String> {
    match s {
        "account" => Ok(Scope::Account),
        "channel" => Ok(Scope::Channel),
        _ => Err(format!(
            "unknown quota scope {s:?}: expected account or channel"
        )),
    }
}

fn quota_op(s: &str) -> Result<QuotaOp, String> {
    QuotaOp::from_name(s).ok_or_else(|| {
        let names: Vec<_> = QuotaOp::ALL.iter().map(|op| op.name()).collect();
        format!(
            "unknown operation {s:?}: expected one of {}",
            names.join(", ")
        )
    })
}

fn quota_rate(rate: f64) -> Result<f64, String> {
    if rate == 0.0 || (MIN_QUOTA_RATE..=MAX_QUOTA_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "the rate must be 0 (no limit) or between {MIN_QUOTA_RATE} and {MAX_QUOTA_RATE} \
             requests per second"
        ))
    }
}

/// `SCOPE.OPERATION=RATE`, e.g. `channel.ConnectAsMaster=10`.
pub(crate) fn parse_quota_override(s: &str) -> Result<QuotaOverride, String> {
    let shape =
        || format!("expected SCOPE.OPERATION=RATE (e.g. channel.ConnectAsMaster=10), not {s:?}");
    let (target, rate) = s.split_once('=').ok_or_else(shape)?;
    let (scope, op) = target.trim().split_once('.').ok_or_else(shape)?;
    let rate: f64 = rate.trim().parse().map_err(|_| shape())?;
    Ok(QuotaOverride {
        scope: quota_scope(scope)?,
        op: quota_op(op)?,
        rate: quota_rate(rate)?,
    })
}

/// `[quota.account]` / `[quota.channel]` tables of `Operation = rate`.
pub(crate) fn file_quota(value: &toml::Value) -> Result<Vec<QuotaOverride>, String> {
    let tables = "quota must be tables [quota.account] and [quota.channel] of Operation = rate";
    let toml::Value::Table(scopes) = value else {
        return Err(tables.to_owned());
    };
    let mut out = Vec::new();
    for (scope_name, ops) in scopes {
        let scope = quota_scope(scope_name).map_err(|e| format!("quota.{scope_name}: {e}"))?;
        let toml::Value::Table(ops) = ops else {
            return Err(format!(
                "quota.{scope_name} must be a table of Operation = rate, not {}",
                ops.type_str()
            ));
        };
        for (op_name, rate) in ops {
            let key = format!("quota.{scope_name}.{op_name}");
            let op = quota_op(op_name).map_err(|e| format!("{key}: {e}"))?;
            let rate = match rate {
                toml::Value::Integer(i) => *i as f64,
                toml::Value::Float(f) => *f,
                other => {
                    return Err(format!(
                        "{key} must be a number (requests per second), not {}",
                        other.type_str()
                    ))
                }
            };
            let rate = quota_rate(rate).map_err(|e| format!("{key}: {e}"))?;
            out.push(QuotaOverride { scope, op, rate });
        }
    }
    Ok(out)
}
