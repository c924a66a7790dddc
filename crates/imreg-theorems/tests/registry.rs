//! The registry lists every built-in check once, in the order of the README's table of verified claims.
#[test]
fn ids_are_unique_and_in_the_readme_order() {
    let ids: Vec<&str> = imreg_theorems::checks().iter().map(|c| c.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "duplicate ids in {ids:?}");
    let readme = include_str!("../../../README.md");
    let table = readme
        .split("<!-- claims:begin -->")
        .nth(1)
        .and_then(|t| t.split("<!-- claims:end -->").next())
        .expect("the README's claims table");
    let listed: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect();
    assert_eq!(ids, listed);
}
