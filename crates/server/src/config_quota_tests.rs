//! The quota options (`--quotas`, `--quota`, the file's `[quota.SCOPE]` tables), with the
//! helpers of `config_tests`.

use super::*;
use kvs_core::quota::{QuotaOp, Scope};

#[test]
fn quotas_come_from_flags_the_environment_and_the_file() {
    use QuotaOp::*;
    use Scope::{Account, Channel};
    assert_eq!(serve(&["--quotas", "aws"]).quota_table(), Quotas::aws());
    let mut env = Env::new();
    env.set("KVS_QUOTAS", "aws");
    assert_eq!(env.parse(&[]).unwrap().quota_table(), Quotas::aws());

    // Flags, repeated.
    let q = serve(&[
        "--quota",
        "channel.ConnectAsMaster=10",
        "--quota",
        "account.DescribeSignalingChannel=100",
    ])
    .quota_table();
    assert_eq!(q.rate(Channel, ConnectAsMaster), Some(10.0));
    assert_eq!(q.rate(Account, DescribeSignalingChannel), Some(100.0));
    assert_eq!(q.iter().count(), 2, "quotas off: only the overrides");

    // The environment, comma-separated; 0 removes one of AWS's limits, fractions are rates.
    let mut env = Env::new();
    env.set("KVS_QUOTAS", "aws").set(
        "KVS_QUOTA",
        "channel.ConnectAsViewer=0,account.ListSignalingChannels=0.5",
    );
    let q = env.parse(&[]).unwrap().quota_table();
    assert_eq!(q.rate(Channel, ConnectAsViewer), None);
    assert_eq!(q.rate(Account, ListSignalingChannels), Some(0.5));
    assert_eq!(
        q.rate(Channel, ConnectAsMaster),
        Some(3.0),
        "AWS's rate otherwise"
    );

    // The file's tables; a flag wins for the same scope and operation, the rest stays.
    let f = File::new(
        "quotas = \"aws\"\n\
         [quota.account]\nDescribeSignalingChannel = 100\n\
         [quota.channel]\nConnectAsMaster = 10\nGetIceServerConfig = 0\nTagResource = 2.5\n",
    );
    let q = serve(&["--config", &f.arg()]).quota_table();
    assert_eq!(q.rate(Account, DescribeSignalingChannel), Some(100.0));
    assert_eq!(q.rate(Channel, ConnectAsMaster), Some(10.0));
    assert_eq!(q.rate(Channel, GetIceServerConfig), None);
    assert_eq!(q.rate(Channel, TagResource), Some(2.5));
    assert_eq!(q.rate(Account, CreateSignalingChannel), Some(50.0));
    let q = serve(&[
        "--config",
        &f.arg(),
        "--quota",
        "channel.ConnectAsMaster=20",
    ])
    .quota_table();
    assert_eq!(
        q.rate(Channel, ConnectAsMaster),
        Some(20.0),
        "the flag wins"
    );
    assert_eq!(
        q.rate(Account, DescribeSignalingChannel),
        Some(100.0),
        "the file's other"
    );
    let mut env = Env::new();
    env.set("KVS_QUOTA", "channel.ConnectAsMaster=30");
    let q = env.parse(&["--config", &f.arg()]).unwrap().quota_table();
    assert_eq!(
        q.rate(Channel, ConnectAsMaster),
        Some(30.0),
        "the environment wins"
    );
    let q = serve(&["--config", &f.arg(), "--quotas", "off"]).quota_table();
    assert_eq!(
        q.rate(Account, CreateSignalingChannel),
        None,
        "--quotas off wins"
    );
    assert_eq!(
        q.rate(Channel, ConnectAsMaster),
        Some(10.0),
        "the file's overrides stay"
    );
}

#[test]
fn quota_overrides_are_checked() {
    for (arg, want) in [
        ("channel.ConnectAsMaster", "expected SCOPE.OPERATION=RATE"),
        ("ConnectAsMaster=1", "expected SCOPE.OPERATION=RATE"),
        (
            "channel.ConnectAsMaster=fast",
            "expected SCOPE.OPERATION=RATE",
        ),
        (
            "region.ConnectAsMaster=1",
            "unknown quota scope \"region\": expected account or channel",
        ),
        (
            "channel.Connect=1",
            "unknown operation \"Connect\": expected one of CreateSignalingChannel, ",
        ),
        (
            "channel.ConnectAsMaster=-1",
            "the rate must be 0 (no limit) or between 0.001 and 1000000",
        ),
        (
            "channel.ConnectAsMaster=0.0001",
            "the rate must be 0 (no limit) or between",
        ),
        (
            "channel.ConnectAsMaster=1000001",
            "the rate must be 0 (no limit) or between",
        ),
        (
            "channel.ConnectAsMaster=NaN",
            "the rate must be 0 (no limit) or between",
        ),
        (
            "channel.ConnectAsMaster=inf",
            "the rate must be 0 (no limit) or between",
        ),
    ] {
        let e = refusal(&["--quota", arg]);
        assert!(e.contains("--quota") && e.contains(want), "{arg}: {e}");
    }
    for op in QuotaOp::ALL {
        let q = serve(&["--quota", &format!("account.{}=1000000", op.name())]).quota_table();
        assert_eq!(q.rate(Scope::Account, op), Some(1_000_000.0));
    }
    let e = refusal_of_file("[quota.channel]\nConnectAsMaster = -2\n");
    assert!(
        e.contains("quota.channel.ConnectAsMaster: the rate must be"),
        "{e}"
    );
}
