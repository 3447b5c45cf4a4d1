//! The `vector` type's value rules, text form and binary form, following pgvector's conventions
//! so that a pgvector dump loads with a type change only.
//!
//! Text: `[1,2.5,-3e-05]`, whitespace allowed around elements and brackets. Output is the
//! shortest decimal that reads back to the same `f32` bit pattern, in PostgreSQL's `float4`
//! layout (fixed notation for decimal exponents -4 to 5, otherwise `1e+06`, `1.5e-07`), which
//! is also what pgvector prints. Binary: int16 dims, int16 zero, then big-endian float4s.

use thiserror::Error;

/// pgvector's limit, kept so that every value either side accepts the other does too.
pub const MAX_DIMS: usize = 16_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VectorError {
    #[error("invalid input syntax for type vector")]
    Syntax { detail: &'static str },
    #[error("vector must have at least 1 dimension")]
    Empty,
    #[error("vector cannot have more than 16000 dimensions")]
    TooManyDims,
    #[error("NaN not allowed in vector")]
    NaN,
    #[error("infinite value not allowed in vector")]
    Infinite,
    #[error("value out of range for type vector")]
    OutOfRange,
    #[error("expected {expected} dimensions, not {actual}")]
    WrongDims { expected: usize, actual: usize },
    #[error("different vector dimensions {0} and {1}")]
    DimsMismatch(usize, usize),
    #[error("invalid binary data for type vector")]
    Binary { detail: &'static str },
    #[error("value out of range: overflow")]
    Overflow,
    #[error("value out of range: underflow")]
    Underflow,
}

/// Checks one element: finite and not NaN.
pub fn check_element(x: f32) -> Result<(), VectorError> {
    if x.is_nan() {
        Err(VectorError::NaN)
    } else if x.is_infinite() {
        Err(VectorError::Infinite)
    } else {
        Ok(())
    }
}

/// Checks a dimension count against 1..=MAX_DIMS.
pub fn check_dims(dims: usize) -> Result<(), VectorError> {
    match dims {
        0 => Err(VectorError::Empty),
        d if d > MAX_DIMS => Err(VectorError::TooManyDims),
        _ => Ok(()),
    }
}

/// Checks a whole value: its length and every element.
pub fn check(values: &[f32]) -> Result<(), VectorError> {
    check_dims(values.len())?;
    values.iter().try_for_each(|&x| check_element(x))
}

/// Checks that a value has the dimensions a column's type modifier asks for (`None` or a
/// negative modifier: any).
pub fn check_expected(typmod: Option<usize>, dims: usize) -> Result<(), VectorError> {
    match typmod {
        Some(expected) if expected != dims => Err(VectorError::WrongDims {
            expected,
            actual: dims,
        }),
        _ => Ok(()),
    }
}

/// Two operands of a distance must have the same dimensions.
pub fn check_same(a: &[f32], b: &[f32]) -> Result<(), VectorError> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err(VectorError::DimsMismatch(a.len(), b.len()))
    }
}

fn is_space(c: u8) -> bool {
    // The characters C's isspace() accepts in the C locale, as pgvector skips them.
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn skip_space(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    i
}

/// Parses the text form. Every error is one of the documented kinds; the input is never echoed
/// (it may be an embedding of protected content).
pub fn parse(text: &str) -> Result<Vec<f32>, VectorError> {
    let s = text.as_bytes();
    let mut i = skip_space(s, 0);
    if s.get(i) != Some(&b'[') {
        return Err(VectorError::Syntax {
            detail: "Vector contents must start with \"[\".",
        });
    }
    i = skip_space(s, i + 1);
    if s.get(i) == Some(&b']') {
        return Err(VectorError::Empty);
    }
    let mut out = Vec::new();
    loop {
        if out.len() == MAX_DIMS {
            return Err(VectorError::TooManyDims);
        }
        i = skip_space(s, i);
        let start = i;
        while i < s.len() && (s[i].is_ascii_alphanumeric() || matches!(s[i], b'.' | b'+' | b'-')) {
            i += 1;
        }
        let token = &text[start..i];
        if token.is_empty() {
            return Err(VectorError::Syntax {
                detail: "Expected a number.",
            });
        }
        let x: f32 = token.parse().map_err(|_| VectorError::Syntax {
            detail: "Expected a number.",
        })?;
        if x.is_infinite() && token.bytes().any(|c| c.is_ascii_digit()) {
            // A numeral too large for float4, as opposed to a spelled-out infinity.
            return Err(VectorError::OutOfRange);
        }
        check_element(x)?;
        out.push(x);
        i = skip_space(s, i);
        match s.get(i) {
            Some(b',') => i += 1,
            Some(b']') => {
                i += 1;
                break;
            }
            _ => {
                return Err(VectorError::Syntax {
                    detail: "Expected \",\" or \"]\".",
                })
            }
        }
    }
    if skip_space(s, i) != s.len() {
        return Err(VectorError::Syntax {
            detail: "Junk after closing right brace.",
        });
    }
    Ok(out)
}

/// Appends one element in a shortest form that reads back to the same bits, laid out as
/// PostgreSQL's `float4` is. (The extension's `vector_out` prints with PostgreSQL's own routine,
/// as pgvector does, whose digits differ from these in rare ties.)
pub fn write_element(out: &mut String, x: f32) {
    use std::fmt::Write;
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // `{:e}` gives the shortest digits that read back to the same bits: "-1.2345e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("LowerExp always has an exponent");
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if negative {
        out.push('-');
    }
    if (-4..6).contains(&exp) {
        // Fixed notation: the decimal point goes after exp + 1 digits.
        let point = exp + 1;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    }
}

/// The text form of a vector.
pub fn format(values: &[f32]) -> String {
    let mut out = String::with_capacity(2 + values.len() * 12);
    out.push('[');
    for (n, &x) in values.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_element(&mut out, x);
    }
    out.push(']');
    out
}

/// pgvector's binary form (what `COPY ... BINARY` and binary bind parameters carry).
pub fn to_binary(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * values.len());
    let dims = u16::try_from(values.len()).expect("vector dimensions are checked at input");
    out.extend_from_slice(&dims.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    for x in values {
        out.extend_from_slice(&x.to_be_bytes());
    }
    out
}

/// Reads pgvector's binary form; the whole input must be one value.
pub fn from_binary(bytes: &[u8]) -> Result<Vec<f32>, VectorError> {
    let short = VectorError::Binary {
        detail: "The value is shorter than its header says.",
    };
    if bytes.len() < 4 {
        return Err(short);
    }
    let dims = i16::from_be_bytes([bytes[0], bytes[1]]);
    let unused = i16::from_be_bytes([bytes[2], bytes[3]]);
    let dims = usize::try_from(dims).map_err(|_| VectorError::Empty)?;
    check_dims(dims)?;
    if unused != 0 {
        return Err(VectorError::Binary {
            detail: "The reserved field must be 0.",
        });
    }
    let body = &bytes[4..];
    if body.len() < 4 * dims {
        return Err(short);
    }
    if body.len() > 4 * dims {
        return Err(VectorError::Binary {
            detail: "The value is longer than its header says.",
        });
    }
    let values: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    values.iter().try_for_each(|&x| check_element(x))?;
    Ok(values)
}

/// Scales to unit length; a zero vector stays zero (as pgvector does).
pub fn l2_normalize(values: &[f32]) -> Vec<f32> {
    let norm = l2_norm(values);
    if norm == 0.0 {
        return values.to_vec();
    }
    values
        .iter()
        .map(|&x| (f64::from(x) / norm) as f32)
        .collect()
}

/// Euclidean norm, accumulated in f64.
/// `a + b`, `a - b` or `a * b` element by element (pgvector's `+`, `-`, `*`): the same
/// dimensions; an infinite element is an overflow, and a zero product of two non-zero elements
/// an underflow.
pub fn elementwise(a: &[f32], b: &[f32], op: Elementwise) -> Result<Vec<f32>, VectorError> {
    check_same(a, b)?;
    let out: Vec<f32> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| match op {
            Elementwise::Add => x + y,
            Elementwise::Sub => x - y,
            Elementwise::Mul => x * y,
        })
        .collect();
    for ((&r, &x), &y) in out.iter().zip(a).zip(b) {
        if r.is_infinite() {
            return Err(VectorError::Overflow);
        }
        if op == Elementwise::Mul && r == 0.0 && x != 0.0 && y != 0.0 {
            return Err(VectorError::Underflow);
        }
    }
    Ok(out)
}

/// The operations of [`elementwise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elementwise {
    Add,
    Sub,
    Mul,
}

/// `a || b`: the elements of `a`, then those of `b`.
pub fn concat(a: &[f32], b: &[f32]) -> Result<Vec<f32>, VectorError> {
    check_dims(a.len() + b.len())?;
    Ok([a, b].concat())
}

/// `subvector(v, start, count)`: `count` elements from the 1-based `start`, as `substring`
/// counts (a start before 1 takes fewer; a count past the end stops there).
pub fn subvector(v: &[f32], start: i32, count: i32) -> Result<Vec<f32>, VectorError> {
    if count < 1 {
        return Err(VectorError::Empty);
    }
    let dims = i64::try_from(v.len()).unwrap_or(i64::MAX);
    let end = (i64::from(start) + i64::from(count)).min(dims + 1);
    let start = i64::from(start).max(1);
    if start > dims || end <= start {
        return Err(VectorError::Empty);
    }
    Ok(v[(start - 1) as usize..(end - 1) as usize].to_vec())
}

/// `avg(vector)`'s state, as pgvector keeps it (`double precision[]`): the count, then the sum
/// of each element; `[0]` before the first vector.
pub fn accumulate(state: &[f64], v: &[f32]) -> Result<Vec<f64>, VectorError> {
    let Some((&n, sums)) = state.split_first() else {
        return Err(VectorError::Empty);
    };
    if n != 0.0 {
        check_expected(Some(sums.len()), v.len())?;
    }
    let mut out = Vec::with_capacity(v.len() + 1);
    out.push(n + 1.0);
    if n == 0.0 {
        out.extend(v.iter().map(|&x| f64::from(x)));
    } else {
        out.extend(sums.iter().zip(v).map(|(&s, &x)| s + f64::from(x)));
    }
    if out.iter().any(|x| x.is_infinite()) {
        return Err(VectorError::Overflow);
    }
    Ok(out)
}

/// Two partial `avg(vector)` states as one (a parallel aggregate's workers).
pub fn combine(a: &[f64], b: &[f64]) -> Result<Vec<f64>, VectorError> {
    match (a.first(), b.first()) {
        (None, _) | (_, None) => Err(VectorError::Empty),
        (Some(0.0), _) => Ok(b.to_vec()),
        (_, Some(0.0)) => Ok(a.to_vec()),
        _ => {
            if a.len() != b.len() {
                return Err(VectorError::DimsMismatch(a.len() - 1, b.len() - 1));
            }
            let out: Vec<f64> = a.iter().zip(b).map(|(x, y)| x + y).collect();
            if out.iter().any(|x| x.is_infinite()) {
                return Err(VectorError::Overflow);
            }
            Ok(out)
        }
    }
}

/// The mean of an `avg(vector)` state; none when no vector was added (SQL's NULL).
pub fn average(state: &[f64]) -> Result<Option<Vec<f32>>, VectorError> {
    let Some((&n, sums)) = state.split_first() else {
        return Err(VectorError::Empty);
    };
    if n == 0.0 {
        return Ok(None);
    }
    check_dims(sums.len())?;
    let out: Vec<f32> = sums.iter().map(|&s| (s / n) as f32).collect();
    if out.iter().any(|x| x.is_infinite()) {
        return Err(VectorError::Overflow);
    }
    Ok(Some(out))
}

/// `binary_quantize(v)`: one bit per element, set where the element is positive, first element
/// in the highest bit of the first byte (PostgreSQL's `bit` layout).
pub fn binary_quantize(v: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; v.len().div_ceil(8)];
    for (i, &x) in v.iter().enumerate() {
        if x > 0.0 {
            out[i / 8] |= 0x80 >> (i % 8);
        }
    }
    out
}

pub fn l2_norm(values: &[f32]) -> f64 {
    values
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests;
