//! jsonb values passed through as PostgreSQL's own datums.
//!
//! Metadata and search filters are stored, compared (`@>`) and returned by PostgreSQL; the
//! extension only checks that a value is an object. pgrx's `JsonB` would convert each value
//! to a `serde_json::Value` and back, which costs a parse and a print per value and refuses
//! what serde_json cannot hold (nesting deeper than 128 levels was an internal error). Here a
//! value is never converted: whatever jsonb holds, these functions pass on.

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::memcxt::PgMemoryContexts;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{FromDatum, IntoDatum};

use crate::runtime::errors::{Error, Kind, Result};

/// A detoasted jsonb datum, alive for the current call (or the memory context it was copied
/// into).
#[derive(Clone, Copy)]
pub struct Jsonb(pg_sys::Datum);

/// The root container's flag for an object (PostgreSQL's `JB_FOBJECT`).
const JB_FOBJECT: u32 = 0x2000_0000;

impl Jsonb {
    /// Wraps a non-null jsonb datum, detoasting it in the current memory context if need be.
    ///
    /// # Safety
    /// `datum` must be a non-null value of type jsonb.
    pub unsafe fn from_jsonb_datum(datum: pg_sys::Datum) -> Self {
        // SAFETY: the caller's promise; pg_detoast_datum returns a 4-byte-header copy when the
        // value is toasted or short-headed, else the value itself.
        unsafe {
            Jsonb(pg_sys::Datum::from(pg_sys::pg_detoast_datum(
                datum.cast_mut_ptr(),
            )))
        }
    }

    /// Parses JSON text as jsonb does (22P02 for text that is not JSON, 54001 for nesting
    /// beyond the server's stack).
    pub fn parse(text: &str) -> Result<Jsonb> {
        let text = std::ffi::CString::new(text).map_err(|_| {
            Error::new(
                Kind::InvalidTextRepresentation,
                "JSON text cannot contain a NUL byte",
            )
        })?;
        // SAFETY: jsonb_in takes a cstring datum and returns a (detoasted) jsonb datum in the
        // current memory context, or raises.
        unsafe {
            let datum = pgrx::direct_function_call_as_datum(
                pg_sys::jsonb_in,
                &[Some(pg_sys::Datum::from(text.as_ptr()))],
            )
            .expect("jsonb_in returns a value");
            Ok(Jsonb::from_jsonb_datum(datum))
        }
    }

    /// The value as JSON text, as PostgreSQL prints jsonb.
    pub fn to_text(self) -> String {
        // SAFETY: jsonb_out takes a jsonb datum and returns a palloc'd cstring.
        unsafe {
            let out = pgrx::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(self.0)])
                .expect("jsonb_out returns a value");
            std::ffi::CStr::from_ptr(out.cast_mut_ptr::<std::ffi::c_char>())
                .to_string_lossy()
                .into_owned()
        }
    }

    /// Whether the value is a JSON object (not an array or a scalar).
    pub fn is_object(&self) -> bool {
        // SAFETY: a detoasted jsonb: a 4-byte varlena header, then the root container's
        // 4-byte header (count and flags).
        unsafe {
            let header = self
                .0
                .cast_mut_ptr::<u8>()
                .add(pg_sys::VARHDRSZ)
                .cast::<u32>()
                .read_unaligned();
            header & JB_FOBJECT != 0
        }
    }
}

// SAFETY: the datum is a jsonb.
unsafe impl SqlTranslatable for Jsonb {
    const TYPE_IDENT: &'static str = "sealstore::jsonb::Jsonb";
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

impl FromDatum for Jsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        // SAFETY: the caller passes a jsonb datum; a null one is never read.
        (!is_null).then(|| unsafe { Self::from_jsonb_datum(datum) })
    }

    /// Copied into `memory_context` (a value read through SPI outlives the SPI connection).
    unsafe fn from_datum_in_memory_context(
        mut memory_context: PgMemoryContexts,
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: as above; pg_detoast_datum_copy always copies, here into `memory_context`.
        memory_context.switch_to(|_| unsafe {
            Some(Jsonb(pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(
                datum.cast_mut_ptr(),
            ))))
        })
    }
}

impl IntoDatum for Jsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

// SAFETY: unboxes through FromDatum above; a null is reported, never dereferenced.
unsafe impl<'fcx> ArgAbi<'fcx> for Jsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: the caller guarantees the argument's type.
        unsafe {
            arg.unbox_arg_using_from_datum()
                .unwrap_or_else(|| panic!("argument {index} must not be null"))
        }
    }
}

// SAFETY: returns the jsonb datum itself.
unsafe impl BoxRet for Jsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: a valid jsonb datum that lives at least as long as the call's result.
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}
