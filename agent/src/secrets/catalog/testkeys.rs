//! PEM blocks for the catalog's tests.

/// A PEM block built at run time, so that no key header sits in the
/// source for secret scanners to trip over.
pub(super) fn pem(label: &str, kind: &str) -> String {
    let dashes = "-----";
    format!("{dashes}BEGIN {label}{kind}{dashes}\nAAAAC3NzaC1lZDI1NTE5\n{dashes}END {label}{kind}{dashes}\n")
}

pub(super) fn private_pem(label: &str) -> String {
    pem(label, "PRIVATE KEY")
}
