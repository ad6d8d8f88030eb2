// TEMPORARY diagnostics (removed before hand-off).
use std::ffi::CString;
use std::hint::black_box;
use std::ptr;
use std::time::Instant;
use fidius::capi::*;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (search, name, secs, reuse) = (&a[1], &a[2], a[3].parse::<f64>().unwrap(), a.get(4).is_some_and(|s| s == "reuse"));
    unsafe {
        let b = fidius_host_builder_new();
        let p = CString::new(search.as_str()).unwrap();
        fidius_host_builder_add_search_path(b, p.as_ptr(), ptr::null_mut());
        let mut host = ptr::null_mut();
        assert_eq!(fidius_host_builder_build(b, &mut host, ptr::null_mut()) as i32, 0);
        let o = fidius_load_options_new();
        fidius_load_options_set_reuse_instance(o, reuse, ptr::null_mut());
        let n = CString::new(name.as_str()).unwrap();
        let mut plugin = ptr::null_mut();
        assert_eq!(fidius_host_load(host, n.as_ptr(), o, &mut plugin, ptr::null_mut()) as i32, 0);
        let input = [2u8, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
        let t = Instant::now();
        let mut iters = 0u64;
        while t.elapsed().as_secs_f64() < secs {
            for _ in 0..100 {
                let mut out = fidius_bytes { data: ptr::null_mut(), len: 0 };
                let st = fidius_plugin_call(plugin, 0, 0, input.as_ptr(), 16, &mut out, ptr::null_mut());
                assert_eq!(st as i32, 0);
                black_box(*out.data);
                fidius_bytes_free(&mut out);
            }
            iters += 100;
        }
        eprintln!("{} ns/call", t.elapsed().as_nanos() as f64 / iters as f64);
    }
}
