//! `spec.access`'s source ranges: networks in CIDR notation, canonical,
//! parsed once here for the Ingresses and the NetworkPolicies.

use std::net::IpAddr;

use thiserror::Error;

use crate::api::MessengerInstanceSpec;

/// The source ranges of `spec.access`, canonical (a bare address is a
/// single-host range).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceRanges {
    /// `spec.access.allowedSourceRanges`.
    pub allowed: Vec<String>,
    /// `spec.access.adminSourceRanges`; only the Ingress uses them, so they
    /// are read (and checked) only with `access.ingress`.
    pub admin: Vec<String>,
}

/// The instance's source ranges, or the first that is not a network.
pub fn source_ranges(spec: &MessengerInstanceSpec) -> Result<SourceRanges, NetworkError> {
    let access = &spec.access;
    let allowed = parse_ranges(
        "spec.access.allowedSourceRanges",
        &access.allowed_source_ranges,
    )?;
    let admin = match access.ingress {
        Some(_) => parse_ranges("spec.access.adminSourceRanges", &access.admin_source_ranges)?,
        None => Vec::new(),
    };
    Ok(SourceRanges { allowed, admin })
}

/// A network setting the operator cannot turn into objects.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum NetworkError {
    #[error(
        "{field}: {value:?} is not a network in CIDR notation; write an address and a prefix length, for example 10.0.0.0/8 or 2001:db8::/32"
    )]
    NotCidr { field: String, value: String },
    #[error(
        "{field}: {value:?} has bits set after its prefix length; write the network address {canonical}"
    )]
    HostBitsSet {
        field: String,
        value: String,
        canonical: String,
    },
}

/// The CIDR ranges of a field, canonical; a bare address is a single-host
/// range.
pub fn parse_ranges(field: &str, ranges: &[String]) -> Result<Vec<String>, NetworkError> {
    ranges
        .iter()
        .enumerate()
        .map(|(index, range)| parse_range(&format!("{field}[{index}]"), range))
        .collect()
}

fn parse_range(field: &str, range: &str) -> Result<String, NetworkError> {
    let not_cidr = || NetworkError::NotCidr {
        field: field.to_owned(),
        value: range.to_owned(),
    };
    let (address, prefix) = match range.trim().split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (range.trim(), None),
    };
    let address: IpAddr = address.parse().map_err(|_| not_cidr())?;
    let bits: u32 = if address.is_ipv4() { 32 } else { 128 };
    let prefix: u32 = match prefix {
        Some(prefix) => prefix
            .parse()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(not_cidr)?,
        None => bits,
    };
    let network = match address {
        IpAddr::V4(v4) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    };
    let canonical = format!("{network}/{prefix}");
    if network != address {
        return Err(NetworkError::HostBitsSet {
            field: field.to_owned(),
            value: range.to_owned(),
            canonical,
        });
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_canonical_cidrs() {
        let ok = parse_ranges(
            "f",
            &[
                "10.0.0.0/8".into(),
                "192.168.1.7".into(),
                "2001:db8::/32".into(),
            ],
        );
        assert_eq!(
            ok.unwrap(),
            ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]
        );
        assert!(matches!(
            parse_ranges("spec.access.allowedSourceRanges", &["10.1.2.3/8".into()]),
            Err(NetworkError::HostBitsSet { canonical, field, .. }) if canonical == "10.0.0.0/8" && field == "spec.access.allowedSourceRanges[0]"
        ));
        for bad in ["ten/8", "10.0.0.0/33", "10.0.0.0/", ""] {
            assert!(
                matches!(parse_range("f", bad), Err(NetworkError::NotCidr { .. })),
                "{bad}"
            );
        }
    }
}
