"""An independent, deliberately simple comparison used by the tests as ground truth about a
generated world: which catalogue rows differ between the Zuora side and the local side after
the catalogue's normalisation. It is not the reconciler (issue 4 builds that, hashed and
rule-aware); it only has to be obviously right."""

from __future__ import annotations

import duckdb
import polars as pl

from extract.catalog import OBJECTS
from reconcile.normalize import local_side_sql, zuora_side_sql

DIFF_SCHEMA = {"object": pl.String, "key": pl.String, "field": pl.String, "kind": pl.String,
               "zuora_value": pl.String, "local_value": pl.String}


def connect_world(zuora: dict[str, pl.DataFrame], local: dict[str, pl.DataFrame]):
    con = duckdb.connect()
    for name, df in zuora.items():
        con.register(name, df.to_arrow())
    for name, df in local.items():
        con.register(name, df.to_arrow())
    return con


def diff(zuora: dict[str, pl.DataFrame], local: dict[str, pl.DataFrame]) -> pl.DataFrame:
    con = connect_world(zuora, local)
    out = []
    try:
        for spec in OBJECTS:
            if spec.name not in zuora or spec.table not in local:
                continue
            con.execute(f"CREATE OR REPLACE TEMP TABLE zs AS {zuora_side_sql(spec)}")
            con.execute(f"CREATE OR REPLACE TEMP TABLE ls AS {local_side_sql(spec)}")
            z, lo = "SELECT * FROM zs", "SELECT * FROM ls"
            miss = con.sql(f"SELECT key FROM ({z}) EXCEPT SELECT key FROM ({lo})").pl()
            orph = con.sql(f"SELECT key FROM ({lo}) EXCEPT SELECT key FROM ({z})").pl()
            for frame, kind in ((miss, "missing_in_local"), (orph, "orphaned_in_local")):
                if frame.height:
                    out.append(frame.select(object=pl.lit(spec.name), key="key",
                                            field=pl.lit(None, pl.String), kind=pl.lit(kind),
                                            zuora_value=pl.lit(None, pl.String),
                                            local_value=pl.lit(None, pl.String)))
            parts = [
                f"SELECT z.key, '{f.name}' AS field, z.\"{f.name}\" AS zv, l.\"{f.name}\" AS lv "
                f"FROM ({z}) z JOIN ({lo}) l USING (key) "
                f"WHERE z.\"{f.name}\" IS DISTINCT FROM l.\"{f.name}\""
                for f in spec.compared_fields
            ]
            if parts:
                mm = con.sql(" UNION ALL ".join(parts)).pl()
                if mm.height:
                    out.append(mm.select(object=pl.lit(spec.name), key="key", field="field",
                                         kind=pl.lit("field_mismatch"), zuora_value="zv",
                                         local_value="lv"))
    finally:
        con.close()
    return pl.concat(out) if out else pl.DataFrame(schema=DIFF_SCHEMA)
