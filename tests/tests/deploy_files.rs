//! The deployment files of docs/deploy.md stay true to graspd: the systemd unit is valid
//! (when `systemd-analyze` is installed) and sets only variables graspd reads, and the
//! Containerfile copies every workspace member (CI builds no image, so this is what
//! keeps it buildable when a member is added).

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    let path = workspace().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_systemd_unit_sets_only_variables_graspd_reads() {
    let unit = read("docs/deploy/graspd.service");
    let help = Command::new(grasp_tests::binary::graspd())
        .arg("--help")
        .output()
        .expect("graspd --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let mut set = 0;
    for line in unit.lines().filter(|l| l.starts_with("Environment=")) {
        let name = line["Environment=".len()..]
            .split('=')
            .next()
            .expect("a variable");
        assert!(
            help.contains(&format!("[env: {name}=")),
            "the unit sets {name}, which graspd does not read"
        );
        set += 1;
    }
    assert!(
        set >= 3,
        "the unit configures graspd through its environment"
    );
    for needed in [
        "Restart=on-failure",
        "LimitNOFILE=",
        "DynamicUser=yes",
        "StateDirectory=graspd",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ExecStart=/usr/local/bin/graspd",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
}

#[test]
fn the_systemd_unit_is_valid() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze not installed");
        return;
    }
    // `verify` wants the ExecStart binary to exist: point it at the one under test.
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = read("docs/deploy/graspd.service").replace(
        "/usr/local/bin/graspd",
        &grasp_tests::binary::graspd().display().to_string(),
    );
    let path = dir.path().join("graspd.service");
    std::fs::write(&path, unit).expect("unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze verify");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_containerfile_copies_every_workspace_member() {
    let manifest = read("Cargo.toml");
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = "))
        .expect("workspace members");
    let containerfile = read("Containerfile");
    let mut count = 0;
    for member in members.trim_matches(['[', ']']).split(',') {
        let member = member.trim().trim_matches('"');
        // A member nested in another (runtime-tokio/executor) comes with its parent.
        let top = member.split('/').next().unwrap_or(member);
        assert!(
            containerfile.contains(&format!("COPY {top} {top}\n")),
            "the Containerfile does not copy the workspace member {member}"
        );
        count += 1;
    }
    assert!(count >= 5, "{members}");
    for needed in [
        "VOLUME /data",
        "GRASPD_DATA_DIR=/data",
        "GRASPD_LISTEN=0.0.0.0:",
        "USER graspd",
        "git",
    ] {
        assert!(
            containerfile.contains(needed),
            "the Containerfile lacks {needed}"
        );
    }
}
