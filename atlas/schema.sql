-- Hub Atlas schema: the one place where tables, views and macros are defined.
-- Applied by atlas.db.migrate(); every statement is idempotent so migrate() can run on every open.
-- Raw tables may change between versions; the views and macros at the end are the stable SQL contract.

-- ---------------------------------------------------------------- crawled facts

CREATE TABLE IF NOT EXISTS models (
    id                 VARCHAR PRIMARY KEY,  -- 'owner/name' as the Hub spells it
    author             VARCHAR,
    sha                VARCHAR,              -- head commit; a re-crawl skips a model whose sha is unchanged
    created_at         TIMESTAMP,            -- UTC; the Hub reports 2022-03-02 for everything older (a floor)
    last_modified      TIMESTAMP,
    downloads          BIGINT,               -- last 30 days, as the Hub reports it
    downloads_all_time BIGINT,
    likes              BIGINT,
    library_name       VARCHAR,
    pipeline_tag       VARCHAR,
    license            VARCHAR,
    gated              VARCHAR,              -- 'false', 'auto' or 'manual'
    architecture       VARCHAR,              -- config.architectures[0]
    model_type         VARCHAR,              -- config.model_type
    num_parameters     BIGINT,               -- safetensors.total where the Hub knows it
    languages          VARCHAR[],
    datasets           VARCHAR[],
    card_length        INTEGER,              -- characters of README text (NULL when no card was read)
    source             VARCHAR NOT NULL,     -- 'hub' | 'snapshot' | 'local' | 'zoo'
    location           VARCHAR,              -- where its files are: endpoint URL or local folder
    crawled_at         TIMESTAMP,
    extra              JSON                  -- what the Hub sent that is not modelled above
);

CREATE TABLE IF NOT EXISTS tags (
    model_id VARCHAR NOT NULL,
    tag      VARCHAR NOT NULL,
    PRIMARY KEY (model_id, tag)
);

CREATE TABLE IF NOT EXISTS cards (
    model_id     VARCHAR PRIMARY KEY,
    front_matter JSON,                       -- parsed YAML metadata (cardData), NULL when absent or invalid
    text         VARCHAR,                    -- README body without front matter; NULL when not fetched
    sha          VARCHAR
);

-- Every piece of lineage evidence, one row per (child, parent, origin).
-- relation: finetune | adapter | quantized | merge | distill | checkpoint | conversion | unknown
-- origin:   card | tag | config | adapter_config | mergekit | card_text | name | weights | time
CREATE TABLE IF NOT EXISTS edges (
    child        VARCHAR NOT NULL,
    parent       VARCHAR NOT NULL,
    relation     VARCHAR NOT NULL,
    origin       VARCHAR NOT NULL,
    confidence   DOUBLE NOT NULL DEFAULT 1.0,  -- 1.0 when declared
    merge_weight DOUBLE,                       -- merges only
    evidence     VARCHAR,                      -- human-readable reason (what was read where)
    flag         VARCHAR,                      -- 'self_loop' | 'cycle' | 'invalid_id' | NULL
    PRIMARY KEY (child, parent, origin)
);

CREATE TABLE IF NOT EXISTS files (
    model_id   VARCHAR NOT NULL,
    path       VARCHAR NOT NULL,
    size       BIGINT,
    lfs_sha256 VARCHAR,
    PRIMARY KEY (model_id, path)
);

-- Problems met while reading a model's metadata: kept as data, the crawl goes on.
CREATE TABLE IF NOT EXISTS flags (
    model_id VARCHAR NOT NULL,
    flag     VARCHAR NOT NULL,   -- e.g. 'yaml_error', 'non_utf8_card', 'self_loop', 'invalid_base_model', 'fetch_error'
    detail   VARCHAR,
    PRIMARY KEY (model_id, flag)
);

-- Evaluation results: model-index entries of cards, and the zoo's measured scores.
CREATE TABLE IF NOT EXISTS evals (
    model_id VARCHAR NOT NULL,
    task     VARCHAR NOT NULL,
    metric   VARCHAR NOT NULL,
    value    DOUBLE,
    dataset  VARCHAR,
    origin   VARCHAR NOT NULL,   -- 'model-index' | 'zoo'
    PRIMARY KEY (model_id, task, metric)
);

-- What a crawl has done and has left, so an interrupted crawl resumes (see crawlers/hub.py).
CREATE TABLE IF NOT EXISTS crawl_state (
    crawl_key  VARCHAR NOT NULL,   -- identifies the crawl: seeds, depth, endpoint
    item       VARCHAR NOT NULL,   -- a queued unit of work (a model whose children to list, a page cursor)
    depth      INTEGER,
    status     VARCHAR NOT NULL,   -- 'pending' | 'done' | 'failed'
    cursor     VARCHAR,            -- next page URL while a listing is half read
    error      VARCHAR,
    attempts   INTEGER DEFAULT 0,
    updated_at TIMESTAMP,
    PRIMARY KEY (crawl_key, item)
);

-- ---------------------------------------------------------------- weights

-- Straight from safetensors headers.
CREATE TABLE IF NOT EXISTS tensors (
    model_id   VARCHAR NOT NULL,
    file       VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    dtype      VARCHAR NOT NULL,
    shape      BIGINT[] NOT NULL,
    data_start BIGINT NOT NULL,   -- absolute byte offsets in the file
    data_end   BIGINT NOT NULL,
    PRIMARY KEY (model_id, file, name)
);

CREATE TABLE IF NOT EXISTS weight_samples (
    model_id   VARCHAR NOT NULL,
    scheme     VARCHAR NOT NULL,
    status     VARCHAR NOT NULL,   -- 'ok' | 'unsupported' | 'error'
    error      VARCHAR,
    n_values   BIGINT,
    bytes_read BIGINT,
    total_bytes BIGINT,            -- bytes of the checkpoint's tensors, for the read fraction
    requests   INTEGER,
    seconds    DOUBLE,
    location   VARCHAR,            -- file of the stored sample (samples/<scheme>/...)
    sampled_at TIMESTAMP,
    PRIMARY KEY (model_id, scheme)
);

-- Per-model statistics of the sampled weights (kurtosis orients edges, see analysis/infer.py).
CREATE TABLE IF NOT EXISTS weight_stats (
    model_id  VARCHAR NOT NULL,
    scheme    VARCHAR NOT NULL,
    reference VARCHAR,
    kurtosis  DOUBLE,
    delta_norm DOUBLE,
    PRIMARY KEY (model_id, scheme)
);

CREATE TABLE IF NOT EXISTS kinship (
    a             VARCHAR NOT NULL,
    b             VARCHAR NOT NULL,
    reference     VARCHAR,          -- common ancestor the deltas are taken from; NULL = raw weights
    scheme        VARCHAR NOT NULL,
    pearson       DOUBLE,
    cosine        DOUBLE,
    l2            DOUBLE,
    sign_conflict DOUBLE,
    topk_overlap  DOUBLE,
    computed_on   VARCHAR,          -- 'cuda' | 'cpu'
    computed_at   TIMESTAMP,
    PRIMARY KEY (a, b, scheme)
);

-- Per-layer kinship profile, for the app's per-layer difference chart.
CREATE TABLE IF NOT EXISTS kinship_layers (
    a       VARCHAR NOT NULL,
    b       VARCHAR NOT NULL,
    scheme  VARCHAR NOT NULL,
    layer   VARCHAR NOT NULL,
    cosine  DOUBLE,
    l2      DOUBLE,
    PRIMARY KEY (a, b, scheme, layer)
);

-- ---------------------------------------------------------------- advice and presentation

CREATE TABLE IF NOT EXISTS merge_suggestions (
    model_id    VARCHAR NOT NULL,
    partner     VARCHAR NOT NULL,
    rank        INTEGER NOT NULL,
    score       DOUBLE,
    method      VARCHAR,
    base        VARCHAR,
    reasons     JSON,
    config_yaml VARCHAR,
    created_at  TIMESTAMP,
    PRIMARY KEY (model_id, partner)
);

-- Precomputed 2-D positions for the atlas page (one row per node, placeholders included).
CREATE TABLE IF NOT EXISTS layout (
    model_id VARCHAR PRIMARY KEY,
    root     VARCHAR,
    x        DOUBLE,
    y        DOUBLE
);

-- ---------------------------------------------------------------- views and macros (the SQL contract)

-- Precedence of evidence for one (child, parent): a specific relation beats 'unknown', then the origin's rank
-- below (what the model's own files state beats what others infer), then confidence.
CREATE OR REPLACE MACRO origin_rank(o) AS CASE o
    WHEN 'mergekit' THEN 1 WHEN 'adapter_config' THEN 2 WHEN 'card' THEN 3 WHEN 'tag' THEN 4
    WHEN 'config' THEN 5 WHEN 'card_text' THEN 6 WHEN 'name' THEN 7 WHEN 'weights' THEN 8
    WHEN 'time' THEN 9 ELSE 10 END;

-- One row per (child, parent): the best evidence, with how many sources agree. Computed live here;
-- `lineage` below reads the same rows from `lineage_best`, which writers refresh (atlas.store.refresh_lineage)
-- so the recursive macros walk a plain table instead of re-ranking every edge at each step.
CREATE OR REPLACE VIEW lineage_live AS
SELECT child, parent, relation, origin, confidence, merge_weight, flag,
       origin IN ('card', 'tag', 'config', 'adapter_config', 'mergekit') AS declared,
       n_sources
FROM (
    SELECT *, count(*) OVER w AS n_sources,
           row_number() OVER (w ORDER BY relation = 'unknown', origin_rank(origin), confidence DESC) AS pick
    FROM edges
    WINDOW w AS (PARTITION BY child, parent)
)
WHERE pick = 1;

CREATE TABLE IF NOT EXISTS lineage_best (
    child VARCHAR NOT NULL, parent VARCHAR NOT NULL, relation VARCHAR NOT NULL, origin VARCHAR NOT NULL,
    confidence DOUBLE, merge_weight DOUBLE, flag VARCHAR, declared BOOLEAN, n_sources BIGINT
);

-- The lineage graph: one row per (child, parent) with the best evidence (see origin_rank for precedence).
CREATE OR REPLACE VIEW lineage AS SELECT * FROM lineage_best;

-- Every node of the graph: stored models, plus placeholders for parents that are not (deleted or uncrawled).
CREATE OR REPLACE VIEW nodes AS
SELECT id, FALSE AS placeholder FROM models
UNION ALL
SELECT id, TRUE AS placeholder FROM (SELECT parent AS id FROM lineage UNION SELECT child FROM lineage)
WHERE id NOT IN (SELECT id FROM models);

-- Ancestors of a model with their distance (depth 1 = parent). Terminates on cycles and self-loops.
CREATE OR REPLACE MACRO ancestors(model) AS TABLE
WITH RECURSIVE up(id, relation, depth, path) AS (
    SELECT parent, relation, 1, [child, parent] FROM lineage WHERE child = model AND parent <> child
    UNION ALL
    SELECT l.parent, l.relation, up.depth + 1, list_append(up.path, l.parent)
    FROM up JOIN lineage l ON l.child = up.id
    WHERE NOT list_contains(up.path, l.parent)
)
SELECT id, min(depth) AS depth, arg_min(relation, depth) AS relation
FROM up GROUP BY id ORDER BY depth, id;

-- Descendants of a model with their distance (depth 1 = child). Terminates on cycles and self-loops.
CREATE OR REPLACE MACRO descendants(model) AS TABLE
WITH RECURSIVE down(id, relation, depth, path) AS (
    SELECT child, relation, 1, [parent, child] FROM lineage WHERE parent = model AND parent <> child
    UNION ALL
    SELECT l.child, l.relation, down.depth + 1, list_append(down.path, l.child)
    FROM down JOIN lineage l ON l.parent = down.id
    WHERE NOT list_contains(down.path, l.child)
)
SELECT id, min(depth) AS depth, arg_min(relation, depth) AS relation
FROM down GROUP BY id ORDER BY depth, id;

-- Roots: nodes with no parent other than themselves.
CREATE OR REPLACE VIEW roots AS
SELECT id FROM nodes
WHERE id NOT IN (SELECT child FROM lineage WHERE parent <> child);

-- Membership of every family: (root, id, depth). A merge of two families belongs to both.
CREATE OR REPLACE VIEW family_members AS
WITH RECURSIVE down(root, id, depth, path) AS (
    SELECT id, id, 0, [id] FROM roots
    UNION ALL
    SELECT down.root, l.child, down.depth + 1, list_append(down.path, l.child)
    FROM down JOIN lineage l ON l.parent = down.id
    WHERE NOT list_contains(down.path, l.child)
)
SELECT root, id, min(depth) AS depth FROM down GROUP BY root, id;

-- One row per family: its root, size, depth, relation mix and impact (sub-tree downloads and likes).
CREATE OR REPLACE VIEW families AS
WITH member_edges AS (
    SELECT f.root, l.relation
    FROM family_members f JOIN lineage l ON l.child = f.id
    JOIN family_members p ON p.root = f.root AND p.id = l.parent
    WHERE l.parent <> l.child
)
SELECT f.root,
       count(*) AS size,
       max(f.depth) AS depth,
       coalesce(sum(m.downloads), 0) AS subtree_downloads,
       coalesce(sum(m.likes), 0) AS subtree_likes,
       coalesce(e.n_finetune, 0) AS n_finetune,
       coalesce(e.n_adapter, 0) AS n_adapter,
       coalesce(e.n_quantized, 0) AS n_quantized,
       coalesce(e.n_merge, 0) AS n_merge,
       coalesce(e.n_other, 0) AS n_other
FROM family_members f
LEFT JOIN models m ON m.id = f.id
LEFT JOIN (
    SELECT root,
           count(*) FILTER (WHERE relation = 'finetune') AS n_finetune,
           count(*) FILTER (WHERE relation = 'adapter') AS n_adapter,
           count(*) FILTER (WHERE relation = 'quantized') AS n_quantized,
           count(*) FILTER (WHERE relation = 'merge') AS n_merge,
           count(*) FILTER (WHERE relation NOT IN ('finetune', 'adapter', 'quantized', 'merge')) AS n_other
    FROM member_edges GROUP BY root
) e ON e.root = f.root
GROUP BY f.root, e.n_finetune, e.n_adapter, e.n_quantized, e.n_merge, e.n_other;

-- Every family a model belongs to, with each member's depth from that family's root.
CREATE OR REPLACE MACRO family(model) AS TABLE
SELECT f.root, f.id, f.depth
FROM family_members f
WHERE f.root IN (
    SELECT id FROM ancestors(model) WHERE id IN (SELECT id FROM roots)
    UNION SELECT model WHERE model IN (SELECT id FROM roots)
)
ORDER BY f.root, f.depth, f.id;

-- Models sharing a parent with this one, with the shared parent and the sibling's relation to it.
CREATE OR REPLACE MACRO siblings(model) AS TABLE
SELECT DISTINCT s.child AS id, s.parent AS shared_parent, s.relation, 1 AS depth
FROM lineage p JOIN lineage s ON s.parent = p.parent
WHERE p.child = model AND s.child <> model AND p.parent <> p.child
ORDER BY shared_parent, id;

-- ---------------------------------------------------------------- crawl (crawlers/hub.py)

-- Order of work within a crawl (breadth-first: by depth, then by when an item was queued), and how many
-- children the Hub reported for a queued model (NULL when unknown).
ALTER TABLE crawl_state ADD COLUMN IF NOT EXISTS seq BIGINT;
ALTER TABLE crawl_state ADD COLUMN IF NOT EXISTS children INTEGER;

-- ---------------------------------------------------------------- weights: kinship (branch weights)

-- A model's kin by sampled weights, both directions of each stored pair (kinship keeps a < b only),
-- nearest first: `SELECT * FROM nearest_kin WHERE model_id = 'zoo/base' ORDER BY rank`.
CREATE OR REPLACE VIEW nearest_kin AS
SELECT model_id, kin, scheme, reference, pearson, cosine, l2, sign_conflict, topk_overlap,
       row_number() OVER (PARTITION BY model_id, scheme
                          ORDER BY pearson DESC NULLS LAST, l2 ASC NULLS LAST, kin) AS rank
FROM (
    SELECT a AS model_id, b AS kin, scheme, reference, pearson, cosine, l2, sign_conflict, topk_overlap FROM kinship
    UNION ALL
    SELECT b AS model_id, a AS kin, scheme, reference, pearson, cosine, l2, sign_conflict, topk_overlap FROM kinship
)
ORDER BY model_id, scheme, rank;

-- ---------------------------------------------------------------- ecosystem analytics (analysis/traits.py)

-- Depth histogram of every family: how many members sit at each depth (0 = the root itself).
CREATE OR REPLACE VIEW family_depths AS
SELECT root, depth, count(*) AS n FROM family_members GROUP BY root, depth;

-- Relation mix of every family: lineage edges between its members, per relation, with their share.
-- (The membership is materialised once: the recursive view would otherwise run for both joins.)
CREATE OR REPLACE VIEW family_relations AS
WITH fm AS MATERIALIZED (SELECT root, id FROM family_members)
SELECT f.root, l.relation, count(*) AS n,
       count(*) / sum(count(*)) OVER (PARTITION BY f.root) AS share
FROM fm f JOIN lineage l ON l.child = f.id
JOIN fm p ON p.root = f.root AND p.id = l.parent
WHERE l.parent <> l.child
GROUP BY f.root, l.relation;

-- A licence id's class: 'permissive', 'copyleft', 'non-commercial', 'restricted' (use-restricted or custom
-- terms: Llama, Gemma, OpenRAIL, ...), 'other' (other / unknown / unrecognised) or 'none' (no licence given).
CREATE OR REPLACE MACRO license_class(license) AS CASE
    WHEN license IS NULL OR trim(license) = '' THEN 'none'
    WHEN regexp_matches(lower(license), '(^|-)nc(-|$)|non-?commercial|^c-uda$') THEN 'non-commercial'
    WHEN regexp_matches(lower(license), 'gpl|^cc-by-sa|^mpl|^gfdl|^eupl|^epl|^odbl|^osl|^cecill') THEN 'copyleft'
    WHEN regexp_matches(lower(license),
        '^(mit|apache(-2(\.0)?)?|isc|zlib|unlicense|wtfpl|cc0-1\.0|cc-by-[0-9.]+|afl-3\.0|academic free.*'
        || '|artistic-2\.0|bsl-1\.0|ms-pl|pddl|odc-by|ecl-2\.0|postgresql|ncsa|bsd.*|0bsd|upl-1\.0)$') THEN 'permissive'
    WHEN regexp_matches(lower(license),
        'rail|^llama|^gemma|^bigscience|^bigcode|^deepseek|^qwen|^tongyi|^falcon|^apple|^mistral|^nvidia'
        || '|^h-research|^intel-research|^fair-noncommercial|^jamba|^cohere|^stabilityai|^sai-') THEN 'restricted'
    ELSE 'other' END;

-- The traits per model that the ecosystem analyses compare along lineage edges. `english_only` is NULL
-- when the card names no language.
CREATE OR REPLACE VIEW model_traits AS
SELECT id, created_at, license, license_class(license) AS license_class,
       coalesce(languages, []) AS languages,
       CASE WHEN len(coalesce(languages, [])) = 0 THEN NULL
            ELSE regexp_full_match(lower(array_to_string(languages, ',')), '(en|eng|english)(,(en|eng|english))*')
       END AS english_only,
       card_length, pipeline_tag, library_name, architecture, downloads, likes
FROM models;

-- One row per lineage edge (self-loops aside): the traits of parent and child side by side, and whether
-- each changed. A `*_changed` flag is NULL when either side does not state the trait (a placeholder parent,
-- no licence, no language, no card read), so "unknown" is never counted as a change.
CREATE OR REPLACE VIEW trait_drift AS
SELECT l.child, l.parent, l.relation, l.origin, l.declared,
       p.license AS parent_license, c.license AS child_license,
       p.license_class AS parent_license_class, c.license_class AS child_license_class,
       CASE WHEN p.license IS NULL OR c.license IS NULL THEN NULL
            ELSE lower(p.license) <> lower(c.license) END AS license_changed,
       p.languages AS parent_languages, c.languages AS child_languages,
       p.english_only AS parent_english_only, c.english_only AS child_english_only,
       CASE WHEN len(p.languages) = 0 OR len(c.languages) = 0 THEN NULL
            ELSE NOT (list_has_all(p.languages, c.languages) AND list_has_all(c.languages, p.languages))
       END AS languages_changed,
       p.card_length AS parent_card_length, c.card_length AS child_card_length,
       c.card_length - p.card_length AS card_length_delta,
       p.pipeline_tag AS parent_pipeline_tag, c.pipeline_tag AS child_pipeline_tag,
       CASE WHEN p.pipeline_tag IS NULL OR c.pipeline_tag IS NULL THEN NULL
            ELSE p.pipeline_tag <> c.pipeline_tag END AS pipeline_tag_changed
FROM lineage l
LEFT JOIN model_traits p ON p.id = l.parent
LEFT JOIN model_traits c ON c.id = l.child
WHERE l.parent <> l.child;
