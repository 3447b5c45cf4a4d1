use super::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn parses_pgvector_text_with_whitespace() {
    assert_eq!(parse("[1,2,3]").unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(
        parse("  [ 1 , -2.5e0,\t3e-2 ]\n").unwrap(),
        vec![1.0, -2.5, 0.03]
    );
    assert_eq!(parse("[.5,1.,+4]").unwrap(), vec![0.5, 1.0, 4.0]);
    // Underflow reads as zero, as strtof does.
    assert_eq!(parse("[1e-50]").unwrap(), vec![0.0]);
}

#[test]
fn rejects_malformed_text_with_a_kind_and_never_the_input() {
    let syntax = |s: &str| matches!(parse(s), Err(VectorError::Syntax { .. }));
    for bad in [
        "", "1,2", "(1,2)", "[1,2", "[1,,2]", "[1 2]", "[1,2]x", "[1,2]]", "[,1]", "[1,]", "[a]",
        "[0x10]", "[1e]", "[--1]", "[1;2]", "[\u{e9}]", "[1]\0",
    ] {
        assert!(syntax(bad), "{bad:?}: {:?}", parse(bad));
    }
    assert_eq!(parse("[]"), Err(VectorError::Empty));
    assert_eq!(parse(" [ ] "), Err(VectorError::Empty));
    assert_eq!(parse("[NaN]"), Err(VectorError::NaN));
    assert_eq!(parse("[1,nan]"), Err(VectorError::NaN));
    assert_eq!(parse("[inf]"), Err(VectorError::Infinite));
    assert_eq!(parse("[-Infinity]"), Err(VectorError::Infinite));
    assert_eq!(parse("[1e39]"), Err(VectorError::OutOfRange));
    assert_eq!(parse("[-3.5e38]"), Err(VectorError::OutOfRange));
    let secret = "[12345.678,topsecret]";
    let e = parse(secret).unwrap_err();
    assert!(!format!("{e} {e:?}").contains("12345"));
}

#[test]
fn enforces_the_dimension_limit_without_reading_past_it() {
    let ok = format!("[{}]", vec!["1"; MAX_DIMS].join(","));
    assert_eq!(parse(&ok).unwrap().len(), MAX_DIMS);
    let over = format!("[{}]", vec!["1"; MAX_DIMS + 1].join(","));
    assert_eq!(parse(&over), Err(VectorError::TooManyDims));
    assert_eq!(check_dims(0), Err(VectorError::Empty));
    assert_eq!(check_dims(MAX_DIMS + 1), Err(VectorError::TooManyDims));
    assert_eq!(
        check_expected(Some(3), 2),
        Err(VectorError::WrongDims {
            expected: 3,
            actual: 2
        })
    );
    assert_eq!(check_expected(None, 2), Ok(()));
}

#[test]
fn prints_like_postgresql_float4() {
    let cases: &[(f32, &str)] = &[
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (1.0 / 3.0, "0.33333334"),
        (100000.0, "100000"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00012, "0.00012"),
        (1e-5, "1e-05"),
        (-1.5e-7, "-1.5e-07"),
        (f32::MAX, "3.4028235e+38"),
        (f32::MIN_POSITIVE, "1.1754944e-38"),
        (1e-45, "1e-45"),
        (16777216.0, "1.6777216e+07"),
        (1.5e-7, "1.5e-07"),
        (0.000123, "0.000123"),
    ];
    for &(x, want) in cases {
        let mut s = String::new();
        write_element(&mut s, x);
        assert_eq!(s, want, "{x:e}");
    }
    assert_eq!(format(&[1.0, -0.5, 1e-5]), "[1,-0.5,1e-05]");
}

#[test]
fn text_round_trips_every_bit_pattern_it_prints() {
    // Random finite bit patterns across the whole exponent range, plus edge values.
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut values = vec![
        f32::MIN_POSITIVE,
        -f32::MAX,
        1e-45,
        -1e-45,
        0.1,
        1e5,
        999_999.94,
    ];
    while values.len() < 200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = f32::from_bits(state as u32);
        if x.is_finite() {
            values.push(x);
        }
    }
    for chunk in values.chunks(1000) {
        let text = format(chunk);
        assert_eq!(bits(&parse(&text).unwrap()), bits(chunk));
    }
}

#[test]
fn binary_form_is_pgvectors_and_round_trips() {
    let v = [1.0f32, -2.0, 0.5];
    let b = to_binary(&v);
    assert_eq!(&b[..4], &[0, 3, 0, 0]);
    assert_eq!(&b[4..8], &1.0f32.to_be_bytes());
    assert_eq!(from_binary(&b).unwrap(), v);
    assert!(matches!(
        from_binary(&b[..b.len() - 1]),
        Err(VectorError::Binary { .. })
    ));
    let mut long = b.clone();
    long.push(0);
    assert!(matches!(
        from_binary(&long),
        Err(VectorError::Binary { .. })
    ));
    let mut unused = b.clone();
    unused[3] = 1;
    assert!(matches!(
        from_binary(&unused),
        Err(VectorError::Binary { .. })
    ));
    assert_eq!(from_binary(&[0, 0, 0, 0]), Err(VectorError::Empty));
    assert_eq!(from_binary(&[0xff, 0xff, 0, 0]), Err(VectorError::Empty));
    assert_eq!(
        from_binary(&[0x3e, 0x81, 0, 0]),
        Err(VectorError::TooManyDims)
    );
    let mut nan = b.clone();
    nan[4..8].copy_from_slice(&f32::NAN.to_be_bytes());
    assert_eq!(from_binary(&nan), Err(VectorError::NaN));
    nan[4..8].copy_from_slice(&f32::INFINITY.to_be_bytes());
    assert_eq!(from_binary(&nan), Err(VectorError::Infinite));
    assert!(from_binary(&[]).is_err());
}

#[test]
fn normalize_and_norm() {
    assert_eq!(l2_norm(&[3.0, 4.0]), 5.0);
    assert_eq!(l2_normalize(&[3.0, 4.0]), vec![0.6, 0.8]);
    assert_eq!(l2_normalize(&[0.0, 0.0]), vec![0.0, 0.0]);
    assert_eq!(check(&[1.0, f32::NAN]), Err(VectorError::NaN));
    assert_eq!(check(&[]), Err(VectorError::Empty));
    assert_eq!(
        check_same(&[1.0], &[1.0, 2.0]),
        Err(VectorError::DimsMismatch(1, 2))
    );
}

#[test]
fn arithmetic_concat_and_subvector_as_pgvector() {
    use super::Elementwise::*;
    assert_eq!(
        elementwise(&[1.0, 2.0], &[3.0, -4.0], Add).unwrap(),
        vec![4.0, -2.0]
    );
    assert_eq!(
        elementwise(&[1.0, 2.0], &[3.0, -4.0], Sub).unwrap(),
        vec![-2.0, 6.0]
    );
    assert_eq!(
        elementwise(&[1.0, 2.0], &[3.0, -4.0], Mul).unwrap(),
        vec![3.0, -8.0]
    );
    assert_eq!(
        elementwise(&[1.0], &[1.0, 2.0], Add),
        Err(VectorError::DimsMismatch(1, 2))
    );
    assert_eq!(
        elementwise(&[f32::MAX], &[f32::MAX], Add),
        Err(VectorError::Overflow)
    );
    assert_eq!(
        elementwise(&[-f32::MAX], &[f32::MAX], Sub),
        Err(VectorError::Overflow)
    );
    assert_eq!(
        elementwise(&[1e-30], &[1e-30], Mul),
        Err(VectorError::Underflow)
    );
    assert_eq!(elementwise(&[0.0], &[1e-30], Mul).unwrap(), vec![0.0]);
    assert_eq!(concat(&[1.0], &[2.0, 3.0]).unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(
        concat(&[0.0; 8000], &[0.0; 8001]),
        Err(VectorError::TooManyDims)
    );
    let v = [1.0, 2.0, 3.0, 4.0, 5.0];
    assert_eq!(subvector(&v, 2, 3).unwrap(), vec![2.0, 3.0, 4.0]);
    assert_eq!(subvector(&v, 4, 10).unwrap(), vec![4.0, 5.0]);
    assert_eq!(subvector(&v, -1, 3).unwrap(), vec![1.0]);
    assert_eq!(subvector(&v, 1, i32::MAX).unwrap(), v.to_vec());
    assert_eq!(subvector(&v, i32::MAX, i32::MAX), Err(VectorError::Empty));
    assert_eq!(subvector(&v, 6, 1), Err(VectorError::Empty));
    assert_eq!(subvector(&v, 0, 1), Err(VectorError::Empty));
    assert_eq!(subvector(&v, 1, 0), Err(VectorError::Empty));
}

#[test]
fn averages_in_parts_are_the_average() {
    let vs: Vec<[f32; 3]> = (0..10)
        .map(|i| [i as f32, 1.0, -(i as f32) * 0.5])
        .collect();
    let mut whole = vec![0.0];
    for v in &vs {
        whole = accumulate(&whole, v).unwrap();
    }
    let (mut a, mut b) = (vec![0.0], vec![0.0]);
    for v in &vs[..4] {
        a = accumulate(&a, v).unwrap();
    }
    for v in &vs[4..] {
        b = accumulate(&b, v).unwrap();
    }
    let parts = combine(&a, &b).unwrap();
    assert_eq!(parts, whole);
    assert_eq!(combine(&[0.0], &whole).unwrap(), whole);
    assert_eq!(combine(&whole, &[0.0]).unwrap(), whole);
    assert_eq!(average(&whole).unwrap().unwrap(), vec![4.5, 1.0, -2.25]);
    assert_eq!(average(&[0.0]).unwrap(), None);
    assert_eq!(
        accumulate(&whole, &[1.0]),
        Err(VectorError::WrongDims {
            expected: 3,
            actual: 1
        })
    );
    assert!(combine(&whole, &[1.0, 1.0]).is_err());
    assert_eq!(
        combine(&[1.0, f64::MAX], &[1.0, f64::MAX]),
        Err(VectorError::Overflow)
    );
}

#[test]
fn binary_quantize_sets_the_positive_elements_first_bit_first() {
    assert_eq!(binary_quantize(&[1.0, -1.0, 0.0, 2.0]), vec![0b1001_0000]);
    let v: Vec<f32> = (0..10)
        .map(|i| if i % 3 == 0 { 0.5 } else { -0.5 })
        .collect();
    assert_eq!(binary_quantize(&v), vec![0b1001_0010, 0b0100_0000]);
    assert_eq!(binary_quantize(&[0.0; 9]), vec![0, 0]);
}
