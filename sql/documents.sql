-- Collections and documents (see pg_ext/src/documents.rs). Like the other tables of the
-- extension, nothing here is granted to any role: the functions reach it as the owner.

CREATE TABLE @extschema@.collections (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES @extschema@.tenants (id),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    dims               integer NOT NULL CHECK (dims BETWEEN 1 AND 16000),
    metric             text NOT NULL CHECK (metric IN ('cosine', 'l2', 'inner_product', 'l1')),
    encrypt_embeddings boolean NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- content: always an envelope bound to the document id. The embedding is either a vector or,
-- for collections with encrypt_embeddings, an envelope of its f32 elements bound to the id.
-- Both kinds stay in the row (vector's storage is MAIN; the envelope column is set to MAIN
-- here), so a search reads them from the heap page it is on, not through TOAST. The content
-- keeps the default EXTENDED storage: long content moves out of the row, where a search never
-- reads it.
CREATE TABLE @extschema@.documents (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES @extschema@.tenants (id),
    collection_id    uuid NOT NULL REFERENCES @extschema@.collections (id) ON DELETE CASCADE,
    content          bytea NOT NULL,
    embedding        @extschema@.vector,
    sealed_embedding bytea,
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((embedding IS NULL) <> (sealed_embedding IS NULL))
);
ALTER TABLE @extschema@.documents ALTER COLUMN sealed_embedding SET STORAGE MAIN;
-- A search reads one collection's rows through this index and nothing else. The tenant is in
-- the key too, so the search's tenant condition is an index condition as well (otherwise the
-- planner ANDs in the tenant_id index that enable_tenant_isolation creates, and reads all of
-- the tenant's collections).
CREATE INDEX documents_collection_id ON @extschema@.documents (collection_id, tenant_id);
CREATE INDEX collections_tenant_id ON @extschema@.collections (tenant_id);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.collections', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.documents', '');
REVOKE ALL ON @extschema@.collections, @extschema@.documents FROM PUBLIC;
