fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("rbac") => print!("{}", caduceus::rbac::cluster_role_yaml()),
        _ => print!("{}", caduceus::api::crd_yaml()),
    }
}
