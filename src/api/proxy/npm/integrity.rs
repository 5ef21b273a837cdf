//! What a tarball must hash to, from its packument's `dist`: the strongest
//! SRI hash in `dist.integrity` (`sha512-<base64>`, as npm itself picks),
//! else the hex SHA-1 of `dist.shasum` that older packages carry alone.
//! A tarball is checked against it while it streams in, before it is stored
//! or served — the same check npm makes, done once for every client.

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use sha1::Digest as _;

use crate::cas::Digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    fn from_sri(name: &str) -> Option<Algorithm> {
        Some(match name {
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha384 => 48,
            Algorithm::Sha512 => 64,
        }
    }
}

/// The accepted digests of one algorithm (SRI may list several).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub algorithm: Algorithm,
    digests: Vec<Vec<u8>>,
}

impl Expected {
    /// From a version's `dist` object; None when it names no hash Larder can
    /// check (then the tarball cannot be verified and must not be stored).
    pub fn from_dist(dist: &Value) -> Option<Expected> {
        let sri = dist.get("integrity").and_then(Value::as_str);
        sri.and_then(Self::from_sri).or_else(|| {
            let shasum = dist.get("shasum").and_then(Value::as_str)?;
            let digest = hex::decode(shasum.trim()).ok()?;
            (digest.len() == Algorithm::Sha1.digest_len()).then(|| Expected {
                algorithm: Algorithm::Sha1,
                digests: vec![digest],
            })
        })
    }

    /// The strongest algorithm's digests in an SRI string; unknown
    /// algorithms, options (`?…`) and malformed entries are skipped, as
    /// browsers and npm's ssri do.
    pub fn from_sri(sri: &str) -> Option<Expected> {
        let mut best: Option<Expected> = None;
        for token in sri.split_ascii_whitespace() {
            let token = token.split('?').next().unwrap_or(token);
            let Some((alg, b64)) = token.split_once('-') else {
                continue;
            };
            let Some(algorithm) = Algorithm::from_sri(alg) else {
                continue;
            };
            let Ok(digest) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                continue;
            };
            if digest.len() != algorithm.digest_len() {
                continue;
            }
            match &mut best {
                Some(b) if b.algorithm == algorithm => b.digests.push(digest),
                Some(b) if b.algorithm > algorithm => {}
                _ => {
                    best = Some(Expected {
                        algorithm,
                        digests: vec![digest],
                    })
                }
            }
        }
        best
    }

    pub fn verifier(&self) -> Verifier {
        let state = match self.algorithm {
            Algorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => State::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
        };
        Verifier {
            expected: self.clone(),
            state,
        }
    }

    /// The digest the CAS can check while it ingests (and index the blob
    /// by, so that the same tarball is found again by its hash): a single
    /// sha512 or sha256. None for SHA-1, SHA-384 or a choice of digests,
    /// which `verify_stream` checks instead.
    pub fn cas_digest(&self) -> Option<Digest> {
        let [digest] = self.digests.as_slice() else {
            return None;
        };
        match self.algorithm {
            Algorithm::Sha512 => Some(Digest::Sha512(Box::new(digest.as_slice().try_into().ok()?))),
            Algorithm::Sha256 => Some(Digest::Sha256(digest.as_slice().try_into().ok()?)),
            Algorithm::Sha1 | Algorithm::Sha384 => None,
        }
    }

    /// `body`, hashed as it passes; when the hash does not match, the
    /// stream ends with an error instead of its end, so whatever stores it
    /// refuses the whole body (a mismatch is only known after the last byte).
    pub fn verify_stream<S>(
        &self,
        body: S,
    ) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static
    where
        S: Stream<Item = Result<Bytes, String>> + Send + 'static,
    {
        let state = (Box::pin(body), Some(self.verifier()));
        futures_util::stream::unfold(state, |(mut body, verifier)| async move {
            let mut verifier = verifier?;
            match body.next().await {
                Some(Ok(chunk)) => {
                    verifier.update(&chunk);
                    Some((Ok(chunk), (body, Some(verifier))))
                }
                Some(Err(e)) => Some((Err(e), (body, None))),
                None => match verifier.finish() {
                    Ok(()) => None,
                    Err(m) => Some((Err(m.to_string()), (body, None))),
                },
            }
        })
    }

    /// SRI form of the first accepted digest, for messages and logs.
    pub fn sri(&self) -> String {
        sri(self.algorithm, &self.digests[0])
    }
}

fn sri(algorithm: Algorithm, digest: &[u8]) -> String {
    format!(
        "{}-{}",
        algorithm.name(),
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

enum State {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

/// Hashes a tarball as it streams and says at the end whether it matched.
pub struct Verifier {
    expected: Expected,
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the upstream's tarball does not match its packument's {expected} (it hashes to {actual}); \
     it was not stored"
)]
pub struct Mismatch {
    pub expected: String,
    pub actual: String,
}

impl Verifier {
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Sha1(h) => h.update(bytes),
            State::Sha256(h) => h.update(bytes),
            State::Sha384(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Result<(), Mismatch> {
        let actual = match self.state {
            State::Sha1(h) => h.finalize().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
            State::Sha384(h) => h.finalize().to_vec(),
            State::Sha512(h) => h.finalize().to_vec(),
        };
        // Digests are public; a constant-time compare buys nothing here.
        if self.expected.digests.contains(&actual) {
            Ok(())
        } else {
            Err(Mismatch {
                expected: self.expected.sri(),
                actual: sri(self.expected.algorithm, &actual),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BODY: &[u8] = b"package tarball bytes";

    fn sri_of(alg: Algorithm, body: &[u8]) -> String {
        let digest = match alg {
            Algorithm::Sha1 => sha1::Sha1::digest(body).to_vec(),
            Algorithm::Sha256 => sha2::Sha256::digest(body).to_vec(),
            Algorithm::Sha384 => sha2::Sha384::digest(body).to_vec(),
            Algorithm::Sha512 => sha2::Sha512::digest(body).to_vec(),
        };
        sri(alg, &digest)
    }

    fn check(expected: &Expected, body: &[u8]) -> Result<(), Mismatch> {
        let mut v = expected.verifier();
        for chunk in body.chunks(5) {
            v.update(chunk);
        }
        v.finish()
    }

    #[test]
    fn sha512_integrity_is_preferred_and_checked() {
        let dist = json!({
            "integrity": sri_of(Algorithm::Sha512, BODY),
            "shasum": hex::encode(sha1::Sha1::digest(b"other")),
        });
        let e = Expected::from_dist(&dist).unwrap();
        assert_eq!(e.algorithm, Algorithm::Sha512);
        assert_eq!(check(&e, BODY), Ok(()));
        let err = check(&e, b"tampered").unwrap_err();
        assert_eq!(err.expected, sri_of(Algorithm::Sha512, BODY));
        assert_eq!(err.actual, sri_of(Algorithm::Sha512, b"tampered"));
    }

    #[test]
    fn shasum_is_the_fallback() {
        let dist = json!({ "shasum": hex::encode(sha1::Sha1::digest(BODY)) });
        let e = Expected::from_dist(&dist).unwrap();
        assert_eq!(e.algorithm, Algorithm::Sha1);
        assert!(check(&e, BODY).is_ok());
        assert!(check(&e, b"x").is_err());
        // An integrity with nothing usable falls back too.
        let dist =
            json!({ "integrity": "md5-abc", "shasum": hex::encode(sha1::Sha1::digest(BODY)) });
        assert_eq!(
            Expected::from_dist(&dist).unwrap().algorithm,
            Algorithm::Sha1
        );
    }

    #[test]
    fn strongest_sri_wins_and_any_of_its_digests_match() {
        let sri = format!(
            "{} {}?opt {} bogus sha512-!!!",
            sri_of(Algorithm::Sha1, b"wrong"),
            sri_of(Algorithm::Sha512, b"other"),
            sri_of(Algorithm::Sha512, BODY),
        );
        let e = Expected::from_sri(&sri).unwrap();
        assert_eq!(e.algorithm, Algorithm::Sha512);
        assert!(check(&e, BODY).is_ok());
        let e = Expected::from_sri(&sri_of(Algorithm::Sha256, BODY)).unwrap();
        assert!(check(&e, BODY).is_ok());
        let e = Expected::from_sri(&sri_of(Algorithm::Sha384, BODY)).unwrap();
        assert!(check(&e, BODY).is_ok());
    }

    #[tokio::test]
    async fn streams_end_in_an_error_when_the_hash_does_not_match() {
        let e = Expected::from_dist(&json!({ "shasum": hex::encode(sha1::Sha1::digest(BODY)) }))
            .unwrap();
        let collect = |body: &'static [u8]| {
            let chunks = body.chunks(4).map(|c| Ok(Bytes::from_static(c)));
            e.verify_stream(futures_util::stream::iter(chunks.collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        };
        let good = collect(BODY).await;
        assert!(good.iter().all(Result::is_ok));
        assert_eq!(
            good.into_iter()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
                .concat(),
            BODY
        );
        let bad = collect(b"tampered tarball").await;
        let last = bad.last().unwrap().as_ref().unwrap_err();
        assert!(
            last.contains("does not match its packument's sha1-"),
            "{last}"
        );
    }

    #[test]
    fn the_cas_checks_a_single_sha2_digest_itself() {
        let e = Expected::from_sri(&sri_of(Algorithm::Sha512, BODY)).unwrap();
        let Some(Digest::Sha512(d)) = e.cas_digest() else {
            panic!("sha512 goes to the CAS")
        };
        assert_eq!(&d[..], &sha2::Sha512::digest(BODY)[..]);
        let e = Expected::from_sri(&sri_of(Algorithm::Sha256, BODY)).unwrap();
        assert!(matches!(e.cas_digest(), Some(Digest::Sha256(_))));
        let two = format!(
            "{} {}",
            sri_of(Algorithm::Sha512, BODY),
            sri_of(Algorithm::Sha512, b"x")
        );
        assert_eq!(Expected::from_sri(&two).unwrap().cas_digest(), None);
        assert_eq!(
            Expected::from_sri(&sri_of(Algorithm::Sha1, BODY))
                .unwrap()
                .cas_digest(),
            None
        );
    }

    #[test]
    fn nothing_checkable_is_none() {
        assert_eq!(Expected::from_dist(&json!({})), None);
        assert_eq!(Expected::from_dist(&json!({ "shasum": "xyz" })), None);
        assert_eq!(Expected::from_dist(&json!({ "shasum": "abcd" })), None);
        assert_eq!(Expected::from_sri("sha512-"), None);
    }
}
