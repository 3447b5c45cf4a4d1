//! The `vector` type: pgvector's on-disk layout (varlena header, int16 dims, int16 zero, f32
//! elements), its text and binary forms, casts, distance functions and operators. Parsing,
//! printing and the kernels live in `sealstore_core::{vector, distance}`.
//!
//! Storage is MAIN: a value stays in the row, uncompressed in practice (float noise does not
//! compress) and out of TOAST unless the row cannot fit a page, so a scan reads vectors where
//! it finds the row. See docs/sql.md, "Vector storage".

use std::ffi::CStr;

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::{Datum, Internal};
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;
use sealstore_core::distance;
use sealstore_core::vector::{self as core_vector, VectorError};

use crate::runtime::errors::{self, edge, Error, OrRaise, Result};

/// Bytes before the first element: varlena header (4), dims (2), unused (2).
const HEADER: usize = 8;

/// A vector argument, borrowed from the (detoasted) datum for the duration of the call.
pub struct VectorArg<'a>(pub &'a [f32]);

/// A vector to return, built in palloc'd memory when it is handed to PostgreSQL.
pub struct Vector(pub Vec<f32>);

const TYPE_IDENT: &str = "sealstore::vector::Vector";

// SAFETY: both Rust types map to the one SQL type `vector` created below.
unsafe impl SqlTranslatable for Vector {
    const TYPE_IDENT: &'static str = TYPE_IDENT;
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::ThisExtension;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("vector"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("vector")));
}

// SAFETY: as above.
unsafe impl SqlTranslatable for VectorArg<'_> {
    const TYPE_IDENT: &'static str = TYPE_IDENT;
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::ThisExtension;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("vector"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("vector")));
}

impl<'a> FromDatum for VectorArg<'a> {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: a non-null datum of type vector: a varlena, possibly toasted or short-headed.
        // pg_detoast_datum returns it with a 4-byte header in memory that lives at least as
        // long as the current call (the executor's per-tuple or the caller's context), and the
        // type's int4 alignment makes the elements f32-aligned.
        unsafe {
            let ptr = pg_sys::pg_detoast_datum(datum.cast_mut_ptr::<pg_sys::varlena>());
            let body = std::slice::from_raw_parts(
                pgrx::varlena::vardata_4b(ptr).cast::<u8>(),
                pgrx::varlena::varsize_4b(ptr) - pg_sys::VARHDRSZ,
            );
            // An argument's conversion is the edge of its function call.
            let dims = stored_dims(body).or_raise();
            Some(VectorArg(std::slice::from_raw_parts(
                ptr.cast::<u8>().add(HEADER).cast::<f32>(),
                dims,
            )))
        }
    }
}

/// The dimension count of a stored vector, from its bytes after the varlena header (dims,
/// unused, f32 elements), checked against their length; XX001 if they do not agree.
pub fn stored_dims(body: &[u8]) -> Result<usize> {
    let dims = match body {
        [a, b, ..] => usize::try_from(i16::from_ne_bytes([*a, *b])).unwrap_or(0),
        _ => 0,
    };
    if dims == 0 || body.len() != HEADER - pg_sys::VARHDRSZ + 4 * dims {
        return Err(Error::damaged("stored vector value is damaged"));
    }
    Ok(dims)
}

// SAFETY: unboxes through FromDatum above; a null is reported, never dereferenced.
unsafe impl<'fcx> ArgAbi<'fcx> for VectorArg<'fcx> {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: the caller guarantees the argument's type.
        unsafe {
            arg.unbox_arg_using_from_datum()
                .unwrap_or_else(|| panic!("argument {index} must not be null"))
        }
    }
}

impl IntoDatum for Vector {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let dims = self.0.len();
        let total = HEADER + 4 * dims;
        let dims = i16::try_from(dims)
            .map_err(|_| VectorError::TooManyDims)
            .or_raise();
        // SAFETY: a fresh palloc of exactly `total` bytes, filled completely before use.
        unsafe {
            let ptr = pg_sys::palloc(total).cast::<u8>();
            pgrx::set_varsize_4b(ptr.cast(), total as i32);
            std::ptr::copy_nonoverlapping(dims.to_ne_bytes().as_ptr(), ptr.add(4), 2);
            std::ptr::write_bytes(ptr.add(6), 0, 2);
            std::ptr::copy_nonoverlapping(
                self.0.as_ptr().cast::<u8>(),
                ptr.add(HEADER),
                4 * self.0.len(),
            );
            Some(pg_sys::Datum::from(ptr))
        }
    }

    fn type_oid() -> pg_sys::Oid {
        type_oid()
    }
}

// SAFETY: returns the datum built by into_datum.
unsafe impl BoxRet for Vector {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            // SAFETY: a valid vector datum.
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

/// A `bit` value to return (`binary_quantize`): its length in bits and its bytes, first bit
/// highest.
pub struct Bits {
    len: usize,
    bytes: Vec<u8>,
}

// SAFETY: maps to PostgreSQL's `bit`.
unsafe impl SqlTranslatable for Bits {
    const TYPE_IDENT: &'static str = "sealstore::vector::Bits";
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("bit"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("bit")));
}

impl IntoDatum for Bits {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        // A VarBit: varlena header, int32 bit length, the bits.
        let total = 8 + self.bytes.len();
        // SAFETY: a fresh palloc of exactly `total` bytes, filled completely before use.
        unsafe {
            let ptr = pg_sys::palloc(total).cast::<u8>();
            pgrx::set_varsize_4b(ptr.cast(), total as i32);
            std::ptr::copy_nonoverlapping((self.len as i32).to_ne_bytes().as_ptr(), ptr.add(4), 4);
            std::ptr::copy_nonoverlapping(self.bytes.as_ptr(), ptr.add(8), self.bytes.len());
            Some(pg_sys::Datum::from(ptr))
        }
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::BITOID
    }
}

// SAFETY: returns the datum built by into_datum.
unsafe impl BoxRet for Bits {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            // SAFETY: a valid bit datum.
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

thread_local! {
    static TYPE_OID: std::cell::Cell<Option<pg_sys::Oid>> = const { std::cell::Cell::new(None) };
}

/// The OID of `sealstore.vector`, for SPI parameters.
pub fn type_oid() -> pg_sys::Oid {
    if let Some(oid) = TYPE_OID.get() {
        return oid;
    }
    let oid = errors::spi(crate::runtime::owner::read_one::<pg_sys::Oid>(
        "SELECT 'sealstore.vector'::pg_catalog.regtype::pg_catalog.oid",
        &[],
    ))
    .or_raise()
    .expect("the vector type exists while the extension is installed");
    TYPE_OID.set(Some(oid));
    oid
}

/// A type modifier as a dimension count (`-1`: none).
fn typmod_dims(typmod: i32) -> Option<usize> {
    usize::try_from(typmod).ok()
}

fn checked(values: Vec<f32>, typmod: i32) -> Result<Vector> {
    core_vector::check(&values)?;
    core_vector::check_expected(typmod_dims(typmod), values.len())?;
    Ok(Vector(values))
}

/// A stored vector's elements from its bytes after the varlena header (dims, unused, f32s),
/// borrowed when they are f32-aligned (a value in the row is), copied into `scratch` otherwise.
pub fn stored<'a>(body: &'a [u8], scratch: &'a mut Vec<f32>) -> Result<&'a [f32]> {
    let elements = &body[body.len() - 4 * stored_dims(body)?..];
    Ok(match bytemuck::try_cast_slice::<u8, f32>(elements) {
        Ok(v) => v,
        Err(_) => {
            scratch.clear();
            scratch.extend(
                elements
                    .chunks_exact(4)
                    .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
            );
            scratch
        }
    })
}

pub fn same_dims(a: &[f32], b: &[f32]) -> Result<()> {
    Ok(core_vector::check_same(a, b)?)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_shell"])]
fn vector_in(input: &CStr, _oid: pg_sys::Oid, typmod: i32) -> Vector {
    edge(|| {
        let text = input.to_str().map_err(|_| VectorError::Syntax {
            detail: "The value is not valid UTF-8.",
        })?;
        checked(core_vector::parse(text)?, typmod)
    })
}

extern "C" {
    /// PostgreSQL's shortest `float4` text (common/shortest_dec.h): what `real` prints, and what
    /// pgvector's output prints per element. Writes at most 16 bytes, no NUL; returns the length.
    fn float_to_shortest_decimal_bufn(f: f32, result: *mut std::ffi::c_char) -> std::ffi::c_int;
}

/// The text of a vector, each element exactly as PostgreSQL prints a `real` (so a text dump or a
/// COPY of a pgvector table is byte for byte the same).
fn text_of(values: &[f32]) -> String {
    let mut out = String::with_capacity(2 + values.len() * 12);
    out.push('[');
    let mut buf = [0 as std::ffi::c_char; 32];
    for (n, &x) in values.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        // SAFETY: the buffer has room for the routine's 16 bytes.
        let len = unsafe { float_to_shortest_decimal_bufn(x, buf.as_mut_ptr()) };
        let bytes = &buf[..usize::try_from(len).unwrap_or(0).min(buf.len())];
        out.extend(bytes.iter().map(|&c| char::from(c as u8)));
    }
    out.push(']');
    out
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_shell"])]
fn vector_out(v: VectorArg<'_>) -> &'static CStr {
    let text = text_of(v.0);
    // SAFETY: pstrdup copies into the current memory context, which outlives the call's use of
    // the result; the text has no interior NUL.
    unsafe {
        let c = std::ffi::CString::new(text).expect("no NUL in vector text");
        CStr::from_ptr(pg_sys::pstrdup(c.as_ptr()))
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_typmod_in(list: Array<&CStr>) -> i32 {
    edge(|| {
        let items: Vec<Option<&CStr>> = list.iter().collect();
        let [Some(item)] = items.as_slice() else {
            return Err(Error::invalid("invalid type modifier"));
        };
        // A modifier that is not an integer is PostgreSQL's own 22P02, as in pgvector.
        let text = item.to_str().unwrap_or("");
        let dims: i64 = text.trim().parse().map_err(|_| {
            Error::new(
                errors::Kind::InvalidTextRepresentation,
                format!("invalid input syntax for type integer: \"{text}\""),
            )
        })?;
        if dims < 1 {
            return Err(Error::invalid(
                "dimensions for type vector must be at least 1",
            ));
        }
        if dims > core_vector::MAX_DIMS as i64 {
            return Err(Error::invalid(
                "dimensions for type vector cannot exceed 16000",
            ));
        }
        Ok(dims as i32)
    })
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_shell"])]
fn vector_recv(mut buf: Internal, _oid: pg_sys::Oid, typmod: i32) -> Vector {
    // SAFETY: PostgreSQL passes a StringInfo positioned at this value; the whole rest of the
    // buffer is the value (bind parameters and COPY BINARY fields are framed by the caller).
    let values = unsafe {
        let info = buf
            .get_mut::<pg_sys::StringInfoData>()
            .expect("receive functions get a StringInfo");
        let start = usize::try_from(info.cursor).unwrap_or(0);
        let end = usize::try_from(info.len).unwrap_or(0);
        let bytes = std::slice::from_raw_parts(info.data.cast::<u8>().add(start), end - start);
        let values = core_vector::from_binary(bytes).or_raise();
        info.cursor = info.len;
        values
    };
    checked(values, typmod).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_send(v: VectorArg<'_>) -> Vec<u8> {
    core_vector::to_binary(v.0)
}

/// The length coercion `vector(n)` columns run on every assignment.
#[pg_extern(immutable, strict, parallel_safe, name = "vector", requires = ["vector_type"])]
fn vector_typmod(v: VectorArg<'_>, typmod: i32, _explicit: bool) -> Vector {
    core_vector::check_expected(typmod_dims(typmod), v.0.len()).or_raise();
    Vector(v.0.to_vec())
}

fn from_elements(
    len: usize,
    values: impl Iterator<Item = Result<Option<f32>>>,
    typmod: i32,
) -> Vector {
    edge(|| {
        if len > core_vector::MAX_DIMS {
            return Err(VectorError::TooManyDims.into());
        }
        let mut out = Vec::with_capacity(len);
        for x in values {
            out.push(x?.ok_or_else(|| errors::null_argument("array must not contain nulls"))?);
        }
        checked(out, typmod)
    })
}

/// The array, if it has at most one dimension (pgvector's "array must be 1-D", 22000): a
/// multi-dimensional array is refused rather than flattened.
fn one_dimensional<T>(values: Array<'_, T>) -> Array<'_, T>
where
    for<'a> Array<'a, T>: FromDatum,
{
    let raw = values.into_array_type();
    // SAFETY: `raw` is the argument's (detoasted) array, valid for the call; it is read for its
    // dimension count and wrapped again as the same array.
    unsafe {
        if (*raw).ndim > 1 {
            errors::raise(Error::new(errors::Kind::DataException, "array must be 1-D"));
        }
        Array::from_datum(pg_sys::Datum::from(raw), false).expect("a non-null array")
    }
}

#[pg_extern(immutable, strict, parallel_safe, name = "array_to_vector", requires = ["vector_type"])]
fn real_array_to_vector(values: Array<'_, f32>, typmod: i32, _explicit: bool) -> Vector {
    let values = one_dimensional(values);
    from_elements(values.len(), values.iter().map(Ok), typmod)
}

/// A `double precision` beyond `real`'s range becomes infinite, and is refused as an infinite
/// element (22000), as pgvector refuses it.
#[pg_extern(immutable, strict, parallel_safe, name = "array_to_vector", requires = ["vector_type"])]
fn double_array_to_vector(values: Array<'_, f64>, typmod: i32, _explicit: bool) -> Vector {
    let values = one_dimensional(values);
    from_elements(
        values.len(),
        values.iter().map(|x| Ok(x.map(|x| x as f32))),
        typmod,
    )
}

#[pg_extern(immutable, strict, parallel_safe, name = "array_to_vector", requires = ["vector_type"])]
fn int_array_to_vector(values: Array<'_, i32>, typmod: i32, _explicit: bool) -> Vector {
    let values = one_dimensional(values);
    from_elements(
        values.len(),
        values.iter().map(|x| Ok(x.map(|x| x as f32))),
        typmod,
    )
}

/// `numeric[]`, each element converted as `numeric::real` converts it (22003 beyond `real`).
#[pg_extern(immutable, strict, parallel_safe, name = "array_to_vector", requires = ["vector_type"])]
fn numeric_array_to_vector(values: Array<'_, AnyNumeric>, typmod: i32, _explicit: bool) -> Vector {
    let values = one_dimensional(values);
    let to_real = |x: Option<AnyNumeric>| -> Result<Option<f32>> {
        // SAFETY: numeric_float4 takes one non-null numeric datum and returns a float4 (or
        // raises 22003 for a value beyond real's range).
        Ok(x.and_then(|n| unsafe {
            pgrx::direct_function_call::<f32>(pg_sys::numeric_float4, &[n.into_datum()])
        }))
    };
    from_elements(values.len(), values.iter().map(to_real), typmod)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_to_float4(v: VectorArg<'_>, _typmod: i32, _explicit: bool) -> Vec<f32> {
    v.0.to_vec()
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn l2_distance(a: VectorArg<'_>, b: VectorArg<'_>) -> f64 {
    same_dims(a.0, b.0).or_raise();
    distance::l2_distance(a.0, b.0)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn inner_product(a: VectorArg<'_>, b: VectorArg<'_>) -> f64 {
    same_dims(a.0, b.0).or_raise();
    distance::inner_product(a.0, b.0)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_negative_inner_product(a: VectorArg<'_>, b: VectorArg<'_>) -> f64 {
    same_dims(a.0, b.0).or_raise();
    -distance::inner_product(a.0, b.0)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn cosine_distance(a: VectorArg<'_>, b: VectorArg<'_>) -> f64 {
    same_dims(a.0, b.0).or_raise();
    distance::cosine_distance(a.0, b.0)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn l1_distance(a: VectorArg<'_>, b: VectorArg<'_>) -> f64 {
    same_dims(a.0, b.0).or_raise();
    distance::l1_distance(a.0, b.0)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_dims(v: VectorArg<'_>) -> i32 {
    v.0.len() as i32
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn l2_norm(v: VectorArg<'_>) -> f64 {
    core_vector::l2_norm(v.0)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn l2_normalize(v: VectorArg<'_>) -> Vector {
    Vector(core_vector::l2_normalize(v.0))
}

fn elementwise(a: &[f32], b: &[f32], op: core_vector::Elementwise) -> Vector {
    Vector(
        core_vector::elementwise(a, b, op)
            .map_err(Error::from)
            .or_raise(),
    )
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_add(a: VectorArg<'_>, b: VectorArg<'_>) -> Vector {
    elementwise(a.0, b.0, core_vector::Elementwise::Add)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_sub(a: VectorArg<'_>, b: VectorArg<'_>) -> Vector {
    elementwise(a.0, b.0, core_vector::Elementwise::Sub)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_mul(a: VectorArg<'_>, b: VectorArg<'_>) -> Vector {
    elementwise(a.0, b.0, core_vector::Elementwise::Mul)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_concat(a: VectorArg<'_>, b: VectorArg<'_>) -> Vector {
    Vector(
        core_vector::concat(a.0, b.0)
            .map_err(Error::from)
            .or_raise(),
    )
}

/// One bit per element, set where it is positive (pgvector's, for Hamming or Jaccard
/// distances over `bit`, e.g. in an expression index).
#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn binary_quantize(v: VectorArg<'_>) -> Bits {
    Bits {
        len: v.0.len(),
        bytes: core_vector::binary_quantize(v.0),
    }
}

/// pgvector's name for the Euclidean norm (`l2_norm` is the same).
#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_norm(v: VectorArg<'_>) -> f64 {
    core_vector::l2_norm(v.0)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn subvector(v: VectorArg<'_>, start: i32, count: i32) -> Vector {
    Vector(
        core_vector::subvector(v.0, start, count)
            .map_err(Error::from)
            .or_raise(),
    )
}

/// `avg(vector)`'s transition: the count and the sums, in `double precision` (pgvector's
/// state, so that partial states of parallel workers combine).
#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_accum(state: Vec<f64>, v: VectorArg<'_>) -> Vec<f64> {
    core_vector::accumulate(&state, v.0)
        .map_err(Error::from)
        .or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_combine(a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    core_vector::combine(&a, &b).map_err(Error::from).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_avg(state: Vec<f64>) -> Option<Vector> {
    core_vector::average(&state)
        .map_err(Error::from)
        .or_raise()
        .map(Vector)
}

/// pgvector's order: element by element, then the shorter vector first.
fn compare(a: &[f32], b: &[f32]) -> i32 {
    for (x, y) in a.iter().zip(b) {
        if x < y {
            return -1;
        }
        if x > y {
            return 1;
        }
    }
    (a.len().cmp(&b.len())) as i32
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_cmp(a: VectorArg<'_>, b: VectorArg<'_>) -> i32 {
    compare(a.0, b.0)
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_lt(a: VectorArg<'_>, b: VectorArg<'_>) -> bool {
    compare(a.0, b.0) < 0
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_le(a: VectorArg<'_>, b: VectorArg<'_>) -> bool {
    compare(a.0, b.0) <= 0
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_eq(a: VectorArg<'_>, b: VectorArg<'_>) -> bool {
    compare(a.0, b.0) == 0
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_ne(a: VectorArg<'_>, b: VectorArg<'_>) -> bool {
    compare(a.0, b.0) != 0
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_ge(a: VectorArg<'_>, b: VectorArg<'_>) -> bool {
    compare(a.0, b.0) >= 0
}

#[pg_extern(immutable, strict, parallel_safe, requires = ["vector_type"])]
fn vector_gt(a: VectorArg<'_>, b: VectorArg<'_>) -> bool {
    compare(a.0, b.0) > 0
}

pgrx::extension_sql!(
    "CREATE TYPE vector;",
    name = "vector_shell",
    creates = [Type(Vector)],
);

pgrx::extension_sql_file!(
    "../../../sql/vector_type.sql",
    name = "vector_type",
    requires = [
        "vector_shell",
        vector_in,
        vector_out,
        vector_typmod_in,
        vector_recv,
        vector_send
    ],
);

pgrx::extension_sql_file!(
    "../../../sql/vector_ops.sql",
    name = "vector_ops",
    requires = [
        "vector_type",
        vector_typmod,
        real_array_to_vector,
        double_array_to_vector,
        int_array_to_vector,
        numeric_array_to_vector,
        vector_to_float4,
        vector_add,
        vector_sub,
        vector_mul,
        vector_concat,
        vector_accum,
        vector_combine,
        vector_avg,
        l2_distance,
        inner_product,
        vector_negative_inner_product,
        cosine_distance,
        l1_distance,
        vector_cmp,
        vector_lt,
        vector_le,
        vector_eq,
        vector_ne,
        vector_ge,
        vector_gt,
    ],
);
