//! Generates bindings to the system intel-ipsec-mb (Debian: libipsec-mb-dev,
//! header intel-ipsec-mb.h) and links libIPSec_MB.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rustc-link-lib=IPSec_MB");
    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function(
            "alloc_mb_mgr|free_mb_mgr|init_mb_mgr_auto|imb_get_version_str|imb_get_errno|imb_get_strerror",
        )
        .allowlist_type("IMB_MGR|IMB_ARCH|gcm_key_data|gcm_context_data")
        .allowlist_var("IMB_VERSION_STR")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on intel-ipsec-mb.h (apt-get install libipsec-mb-dev, or ./setup.sh)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("writing bindings.rs");
}
