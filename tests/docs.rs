//! The documentation's Rust program is an example that CI builds and runs: the getting-started
//! page (docs/getting-started.md) must show `crates/shmq/examples/getting_started.rs` exactly,
//! so that what a reader copies is what was run.

use std::path::Path;

/// The contents of the code blocks of `page` fenced as ```` ```lang ````.
fn code_blocks(page: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match &mut current {
            None if line.trim_end() == format!("```{lang}") => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unterminated ```{lang} block");
    blocks
}

#[test]
fn getting_started_shows_the_example_that_ci_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let page = read("docs/getting-started.md");
    let example = read("crates/shmq/examples/getting_started.rs");
    // The page shows the program without the example's module comment (how to run it there).
    let program: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!"))
        .skip_while(|l| l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let blocks = code_blocks(&page, "rust");
    assert_eq!(blocks.len(), 1, "one Rust program on the page");
    assert!(
        blocks[0] == program,
        "docs/getting-started.md's Rust program differs from \
         crates/shmq/examples/getting_started.rs: copy the example into the page"
    );
}
