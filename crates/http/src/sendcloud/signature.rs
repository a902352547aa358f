//! SendCloud's request signature: the MD5 hex digest of
//! `appKey&k1=v1&k2=v2&…&kn=vn&appKey`, over every parameter except
//! `signature`, sorted by name, with the values as sent (decoded).

use md5::{Digest, Md5};

use super::params::Params;

pub const SIGNATURE_PARAM: &str = "signature";

/// The signature of `params` under `app_key`, as lowercase hex.
pub fn sign<'a>(app_key: &str, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut sorted: Vec<(&str, &str)> = params.into_iter().filter(|(name, _)| *name != SIGNATURE_PARAM).collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    digest_hex(app_key, sorted)
}

/// The signature a request should carry, for checking the one it does.
pub fn expected_signature(app_key: &str, params: &Params) -> String {
    // `Params` iterates in name order already: no copy and no sort.
    digest_hex(app_key, params.iter().filter(|(name, _)| *name != SIGNATURE_PARAM))
}

/// MD5 of `appKey&k1=v1&…&kn=vn&appKey` over parameters already sorted by name, as lowercase hex.
fn digest_hex<'a>(app_key: &str, sorted: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Md5::new();
    hasher.update(app_key.as_bytes());
    for (name, value) in sorted {
        hasher.update(b"&");
        hasher.update(name.as_bytes());
        hasher.update(b"=");
        hasher.update(value.as_bytes());
    }
    hasher.update(b"&");
    hasher.update(app_key.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether `text` is shaped like a signature (32 hex digits, any case).
pub fn is_well_formed(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Characters left as they are in a form-encoded value: RFC 3986's unreserved set.
const FORM_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `name=value&…&signature=…`, form-encoded and signed: the body (or query
/// string) of a SendCloud request. Used by `subledger sign` and the benchmark.
pub fn signed_form<K: AsRef<str>, V: AsRef<str>>(app_key: &str, params: &[(K, V)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).filter(|(k, _)| *k != SIGNATURE_PARAM).collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let signature = sign(app_key, sorted.iter().copied());
    let mut form = String::with_capacity(sorted.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>() + SIGNATURE_PARAM.len() + 33);
    for (name, value) in sorted {
        form.extend(percent_encoding::utf8_percent_encode(name, FORM_VALUE));
        form.push('=');
        form.extend(percent_encoding::utf8_percent_encode(value, FORM_VALUE));
        form.push('&');
    }
    form.push_str(SIGNATURE_PARAM);
    form.push('=');
    form.push_str(&signature);
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_sorted_parameters_between_two_copies_of_the_key() {
        // md5("KEY&appId=app&money=654.00&username=adf54654&KEY")
        let signature = sign("KEY", [("username", "adf54654"), ("money", "654.00"), ("appId", "app"), ("signature", "ignored")]);
        assert_eq!(signature, "b5dd6c550263b2fecce38e3038b1b235");
        assert!(is_well_formed(&signature));
        assert!(!is_well_formed("xyz"));
        let mut params = Params::default();
        params.extend_urlencoded(b"username=adf54654&signature=ignored&money=654.00&appId=app").unwrap();
        assert_eq!(expected_signature("KEY", &params), signature);
    }
}
