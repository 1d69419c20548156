//! A model of curl's no-proxy matcher, written from curl's own rules rather
//! than from tagstrap's code: `proxy_check_noproxy()` in curl's
//! `lib/proxy.c` (curl 8.21; `lib/noproxy.c` before), the function curl's
//! unit test 1614 checks. It works on the bytes of the two strings as curl
//! does, with the C library's `inet_pton()` deciding what is an address, so
//! that it shares nothing with `tagstrap::proxy::NoProxy` but the rules.
//!
//! It is the oracle of the `no_proxy` fuzz target and of
//! `tests/no_proxy_model.rs`, which first checks it against curl's unit
//! table. `name` is the host as curl holds it after parsing a URL: an IPv6
//! address without brackets, an IPv4 address in dotted-quad form.

use std::ffi::CString;

/// curl's `ISBLANK`: a space or a tab.
fn blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

extern "C" {
    // POSIX, in every C library curl builds on; the libc crate leaves it out.
    fn inet_pton(af: libc::c_int, src: *const libc::c_char, dst: *mut libc::c_void) -> libc::c_int;
}

/// `inet_pton(AF_INET or AF_INET6, text)`: the address bytes, or `None`
/// when the text is not one (a NUL inside is not one either).
fn pton(family: libc::c_int, text: &[u8]) -> Option<[u8; 16]> {
    let text = CString::new(text).ok()?;
    let mut out = [0u8; 16];
    // SAFETY: `out` has room for an in6_addr (16 bytes), the largest
    // result, and `text` is NUL-terminated.
    let rc = unsafe { inet_pton(family, text.as_ptr(), out.as_mut_ptr().cast()) };
    (rc == 1).then_some(out)
}

#[derive(Clone, Copy, PartialEq)]
enum Type {
    Host,
    V4,
    V6,
}

/// `cidr4_match()`: bits 0 and 32 compare the whole address.
fn cidr4(host: &[u8], network: &[u8], bits: u32) -> bool {
    if bits > 32 {
        return false;
    }
    let (Some(a), Some(n)) = (pton(libc::AF_INET, host), pton(libc::AF_INET, network)) else {
        return false;
    };
    let (a, n) = (
        u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_be_bytes([n[0], n[1], n[2], n[3]]),
    );
    if bits != 0 && bits != 32 {
        let mask = 0xffff_ffffu32 << (32 - bits);
        return (a ^ n) & mask == 0;
    }
    a == n
}

/// `cidr6_match()`: bits 0 means 128; whole bytes, then the rest's high bits.
fn cidr6(host: &[u8], network: &[u8], bits: u32) -> bool {
    let bits = if bits == 0 { 128 } else { bits };
    let (bytes, rest) = ((bits / 8) as usize, bits & 7);
    if bytes > 16 || (bytes == 16 && rest != 0) {
        return false;
    }
    let (Some(a), Some(n)) = (pton(libc::AF_INET6, host), pton(libc::AF_INET6, network)) else {
        return false;
    };
    if a[..bytes] != n[..bytes] {
        return false;
    }
    if rest != 0 && (a[bytes] ^ n[bytes]) & (0xffu8 << (8 - rest)) != 0 {
        return false;
    }
    true
}

/// `match_host()`: one trailing, then one leading dot of the token ignored;
/// equal, or the name's tail after a dot, without regard to ASCII case.
fn match_host(token: &[u8], name: &[u8]) -> bool {
    let mut token = token;
    if token.last() == Some(&b'.') {
        token = &token[..token.len() - 1];
    }
    if token.first() == Some(&b'.') {
        token = &token[1..];
    }
    if token.len() == name.len() {
        return token.eq_ignore_ascii_case(name);
    }
    if token.len() < name.len() {
        let start = name.len() - token.len();
        return name[start - 1] == b'.' && name[start..].eq_ignore_ascii_case(token);
    }
    false
}

/// `match_ip()`: a token of 128 bytes or more never matches; `/bits` must
/// be decimal digits up to 128 and end the token.
fn match_ip(kind: Type, token: &[u8], name: &[u8]) -> bool {
    if token.len() >= 128 {
        return false;
    }
    let (address, bits) = match token.iter().position(|&b| b == b'/') {
        None => (token, 0),
        Some(slash) => {
            let digits = &token[slash + 1..];
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return false;
            }
            let mut value: u64 = 0;
            for &d in digits {
                value = value * 10 + u64::from(d - b'0');
                if value > 128 {
                    return false;
                }
            }
            (&token[..slash], value as u32)
        }
    };
    match kind {
        Type::V6 => cidr6(name, address, bits),
        _ => cidr4(name, address, bits),
    }
}

/// `proxy_check_noproxy(name, no_proxy)`: whether `name` bypasses the proxy.
pub fn check_noproxy(name: &str, no_proxy: &str) -> bool {
    let (name, list) = (name.as_bytes(), no_proxy.as_bytes());
    if name.is_empty() || list.is_empty() {
        return false;
    }
    if list == b"*" {
        return true;
    }
    let mut name = name;
    let kind = if pton(libc::AF_INET, name).is_some() {
        Type::V4
    } else if pton(libc::AF_INET6, name).is_some() {
        Type::V6
    } else {
        if name.last() == Some(&b'.') {
            name = &name[..name.len() - 1];
        }
        Type::Host
    };
    let mut p = 0;
    while p < list.len() {
        while p < list.len() && blank(list[p]) {
            p += 1;
        }
        let start = p;
        while p < list.len() && !blank(list[p]) && list[p] != b',' {
            p += 1;
        }
        let token = &list[start..p];
        if !token.is_empty() {
            let hit = match kind {
                Type::Host => match_host(token, name),
                _ => match_ip(kind, token, name),
            };
            if hit {
                return true;
            }
        }
        while p < list.len() && blank(list[p]) {
            p += 1;
        }
        if p >= list.len() || list[p] != b',' {
            break;
        }
        while p < list.len() && list[p] == b',' {
            p += 1;
        }
    }
    false
}
