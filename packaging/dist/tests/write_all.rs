//! The pages and completions land where packaging/deb.sh and install.sh pick them up, and the
//! pages describe the flags the binaries really take.

use clap_complete::Shell;

#[test]
fn writes_a_page_and_three_completions_per_tool() {
    let out = tempfile::tempdir().expect("tempdir");
    let written = mesh_dist::write_all(out.path()).expect("write_all");
    for page in [
        "man/man8/meshd.8",
        "man/man1/meshctl.1",
        "man/man1/meshctl-apply.1",
        "man/man1/meshload.1",
        "man/man1/meshstat.1",
    ] {
        assert!(
            written.iter().any(|w| w == page),
            "{page} missing from {written:?}"
        );
        let text = std::fs::read_to_string(out.path().join(page)).expect("page");
        assert!(
            text.starts_with(".ie \\n(.g .ds Aq"),
            "{page} is not roff: {text:.80}"
        );
    }
    for bin in ["meshd", "meshctl", "meshload", "meshstat"] {
        for shell in mesh_dist::SHELLS {
            let rel = format!("completions/{}", mesh_dist::completion_path(shell, bin));
            let text = std::fs::read_to_string(out.path().join(&rel)).expect("completion");
            assert!(text.contains(bin), "{rel} does not name {bin}");
        }
    }
    let zsh = mesh_dist::completion_path(Shell::Zsh, "meshd");
    assert_eq!(zsh, "zsh/vendor-completions/_meshd");
}

#[test]
fn meshd_page_lists_every_long_flag() {
    let out = tempfile::tempdir().expect("tempdir");
    mesh_dist::write_all(out.path()).expect("write_all");
    let page = std::fs::read_to_string(out.path().join("man/man8/meshd.8")).expect("page");
    let cmd = <meshd::cli::Args as clap::CommandFactory>::command();
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            // roff escapes the dashes: \-\-config\-dir
            let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(page.contains(&roff), "meshd.8 lacks --{long}");
        }
    }
}
