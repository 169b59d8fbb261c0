//! restic's chunker polynomial: a random irreducible polynomial of degree 53
//! over GF(2), stored in the config. holdfast does not chunk with it (it uses
//! FastCDC, see `docs/FORMAT.md`), but restic refuses a config whose
//! polynomial is not irreducible, and restic chunks with it when it writes
//! into a repository holdfast created. So holdfast generates a valid one.

/// A polynomial over GF(2), bit i being the coefficient of x^i.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polynomial(pub u64);

fn deg(x: u128) -> i32 {
    127 - x.leading_zeros() as i32
}

fn modulo(mut x: u128, g: u128) -> u128 {
    let dg = deg(g);
    while x != 0 && deg(x) >= dg {
        x ^= g << (deg(x) - dg);
    }
    x
}

fn clmul(a: u64, b: u64) -> u128 {
    let mut r = 0u128;
    let a = a as u128;
    for i in 0..64 {
        if b >> i & 1 == 1 {
            r ^= a << i;
        }
    }
    r
}

fn mul_mod(a: u64, b: u64, g: u64) -> u64 {
    modulo(clmul(a, b), g as u128) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let r = modulo(a as u128, b as u128) as u64;
        a = b;
        b = r;
    }
    a
}

/// x^(2^p) - x mod g.
fn qp(p: u32, g: u64) -> u64 {
    let mut res = 2u64; // x
    for _ in 0..p {
        res = mul_mod(res, res, g);
    }
    modulo((res ^ 2) as u128, g as u128) as u64
}

impl Polynomial {
    pub fn degree(self) -> i32 {
        63 - self.0.leading_zeros() as i32
    }

    /// Ben-Or's irreducibility test, as restic's chunker implements it.
    pub fn is_irreducible(self) -> bool {
        if self.0 == 0 {
            return false;
        }
        for i in 1..=(self.degree() / 2) as u32 {
            if gcd(self.0, qp(i, self.0)) != 1 {
                return false;
            }
        }
        true
    }

    /// Draw random degree-53 polynomials until one is irreducible (about one
    /// in 53 is).
    pub fn random() -> Polynomial {
        loop {
            let mut b = [0u8; 8];
            crate::crypto::fill_random(&mut b);
            let mut f = u64::from_le_bytes(b);
            f &= (1u64 << 54) - 1;
            f |= (1u64 << 53) | 1;
            let p = Polynomial(f);
            if p.is_irreducible() {
                return p;
            }
        }
    }

    /// The hex form restic stores: lowercase, no leading zeros.
    pub fn to_hex(self) -> String {
        format!("{:x}", self.0)
    }

    pub fn from_hex(s: &str) -> Option<Polynomial> {
        u64::from_str_radix(s, 16).ok().map(Polynomial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_polynomials_are_irreducible() {
        // From restic's design document and from a repository restic 0.14 made.
        for hex in ["25b468838dcb75", "21d3fa4a6549eb"] {
            let p = Polynomial::from_hex(hex).unwrap();
            assert_eq!(p.degree(), 53);
            assert!(p.is_irreducible(), "{hex}");
        }
    }

    #[test]
    fn reducible_polynomials_are_rejected() {
        // (x+1)^2 = x^2 + 1, x^53 + 1 (divisible by x + 1), x^54 = x * x^53.
        assert!(!Polynomial(0b101).is_irreducible());
        assert!(!Polynomial((1 << 53) | 1).is_irreducible());
        assert!(!Polynomial(1 << 53).is_irreducible());
        assert!(Polynomial(0b111).is_irreducible()); // x^2 + x + 1
    }

    #[test]
    fn random_is_degree_53_and_irreducible() {
        for _ in 0..3 {
            let p = Polynomial::random();
            assert_eq!(p.degree(), 53);
            assert!(p.is_irreducible());
            assert_eq!(Polynomial::from_hex(&p.to_hex()), Some(p));
        }
    }
}
