"""The Hasura-like read side: where, order_by, distinct_on, limit/offset, jsonb paths."""

from __future__ import annotations

import datetime

import pytest

from .helpers import data, messages

UTC = datetime.timezone.utc


@pytest.fixture
def rows(prefect_api):
    """Three tenants, projects with and without descriptions, agents with labels."""
    store = prefect_api.store
    tenants = {}
    for i, slug in enumerate(["b", "a", "c"]):
        tenants[slug] = store.insert(
            "tenant",
            {
                "name": slug.upper(),
                "slug": slug,
                "info": {"rank": i, "tags": ["x", slug]},
                "created": datetime.datetime(2021, 1, 1 + i, tzinfo=UTC),
            },
        )["id"]
    for slug, name, description in [
        ("a", "p1", "first"),
        ("a", "p2", None),
        ("b", "p3", "third"),
        ("c", "p4", None),
    ]:
        store.insert(
            "project", {"tenant_id": tenants[slug], "name": name, "description": description}
        )
    store.insert("agent", {"tenant_id": tenants["a"], "labels": ["x", "y"], "name": "ag1"})
    store.insert("agent", {"tenant_id": tenants["a"], "labels": [], "name": "ag2"})
    return tenants


def names(prefect_api, query, variables=None, key=None):
    result = data(prefect_api.execute(query, variables))
    (rows,) = result.values() if key is None else (result[key],)
    return [r["name"] for r in rows]


def test_comparisons_and_null_semantics(prefect_api, rows):
    q = "query($w: project_bool_exp) { project(where: $w, order_by: {name: asc}) { name } }"
    assert names(prefect_api, q, {"w": {"description": {"_eq": "first"}}}) == ["p1"]
    # a NULL column never satisfies a comparison, not even _neq
    assert names(prefect_api, q, {"w": {"description": {"_neq": "first"}}}) == ["p3"]
    assert names(prefect_api, q, {"w": {"description": {"_is_null": True}}}) == ["p2", "p4"]
    assert names(prefect_api, q, {"w": {"description": {"_is_null": False}}}) == ["p1", "p3"]
    # a null argument drops the comparison (Hasura's null collapse)
    assert names(prefect_api, q, {"w": {"description": {"_eq": None}}}) == [
        "p1",
        "p2",
        "p3",
        "p4",
    ]
    assert names(prefect_api, q, {"w": {"name": {"_in": ["p2", "p4", "zz"]}}}) == ["p2", "p4"]
    assert names(prefect_api, q, {"w": {"name": {"_nin": ["p2", "p4"]}}}) == ["p1", "p3"]
    assert names(prefect_api, q, {"w": {"name": {"_in": []}}}) == []
    assert names(prefect_api, q, {"w": {"name": {"_gt": "p2", "_lte": "p4"}}}) == ["p3", "p4"]
    assert names(prefect_api, q, {"w": {"name": {"_like": "p%"}, "description": {}}}) == [
        "p1",
        "p2",
        "p3",
        "p4",
    ]
    assert names(prefect_api, q, {"w": {"description": {"_ilike": "%IRS%"}}}) == ["p1"]
    assert names(prefect_api, q, {"w": {"name": {"_regex": "[13]$"}}}) == ["p1", "p3"]


def test_boolean_operators(prefect_api, rows):
    q = "query($w: project_bool_exp) { project(where: $w, order_by: {name: asc}) { name } }"
    either = {"_or": [{"name": {"_eq": "p1"}}, {"name": {"_eq": "p4"}}]}
    assert names(prefect_api, q, {"w": either}) == ["p1", "p4"]
    both = {"_and": [{"name": {"_neq": "p1"}}, {"description": {"_is_null": True}}]}
    assert names(prefect_api, q, {"w": both}) == ["p2", "p4"]
    assert names(prefect_api, q, {"w": {"_not": {"name": {"_eq": "p1"}}}}) == ["p2", "p3", "p4"]
    # NOT of an unknown comparison (NULL column) is still unknown
    assert names(prefect_api, q, {"w": {"_not": {"description": {"_eq": "first"}}}}) == ["p3"]
    assert names(prefect_api, q, {"w": {"_or": []}}) == []
    assert len(names(prefect_api, q, {"w": {"_and": []}})) == 4
    assert len(names(prefect_api, q, {"w": {}})) == 4


def test_relationship_filters(prefect_api, rows):
    q = "query($w: project_bool_exp) { project(where: $w, order_by: {name: asc}) { name } }"
    assert names(prefect_api, q, {"w": {"tenant": {"slug": {"_eq": "a"}}}}) == ["p1", "p2"]
    t = "query($w: tenant_bool_exp) { tenant(where: $w, order_by: {slug: asc}) { name } }"
    # array relationship: EXISTS a matching project
    assert names(prefect_api, t, {"w": {"projects": {"description": {"_is_null": False}}}}) == [
        "A",
        "B",
    ]
    assert names(prefect_api, t, {"w": {"projects": {}}}) == ["A", "B", "C"]
    assert names(prefect_api, t, {"w": {"_not": {"projects": {"name": {"_eq": "p4"}}}}}) == [
        "A",
        "B",
    ]


def test_literal_arguments_as_the_client_prints_them(prefect_api, rows):
    q = (
        'query { tenant(where: {slug: {_in: ["a", "c"]}}, order_by: {slug: desc}) '
        '{ name projects(where: {name: {_eq: "p1"}}) { name } } }'
    )
    tenants = data(prefect_api.execute(q))["tenant"]
    assert tenants == [{"name": "C", "projects": []}, {"name": "A", "projects": [{"name": "p1"}]}]


def test_order_by_nulls_limit_offset(prefect_api, rows):
    base = "query { project(%s) { name } }"

    def q(args):
        return names(prefect_api, base % args)

    # Postgres: ASC puts NULLs last, DESC puts them first
    assert q("order_by: [{description: asc}, {name: asc}]") == ["p1", "p3", "p2", "p4"]
    assert q("order_by: [{description: desc}, {name: asc}]") == ["p2", "p4", "p3", "p1"]
    assert q("order_by: [{description: asc_nulls_first}, {name: desc}]") == [
        "p4",
        "p2",
        "p1",
        "p3",
    ]
    assert q("order_by: {name: desc}, limit: 2") == ["p4", "p3"]
    assert q("order_by: {name: asc}, limit: 2, offset: 1") == ["p2", "p3"]
    # ordering through an object relationship
    assert q("order_by: [{tenant: {slug: desc}}, {name: asc}]") == ["p4", "p3", "p1", "p2"]


def test_distinct_on(prefect_api, rows):
    q = (
        "query { project(distinct_on: tenant_id, "
        "order_by: [{tenant_id: asc}, {name: desc}]) { name } }"
    )
    result = names(prefect_api, q)
    assert sorted(result) == ["p2", "p3", "p4"]
    bad = "query { project(distinct_on: name, order_by: {tenant_id: asc}) { name } }"
    assert messages(prefect_api.execute(bad)) == [
        '"distinct_on" columns must match initial "order_by" columns'
    ]


def test_jsonb_columns(prefect_api, rows):
    q = (
        'query { tenant(where: {slug: {_eq: "c"}}) { info rank: info(path: "$.rank") '
        't: info(path: "tags[1]") missing: info(path: "nope.x") } }'
    )
    (tenant,) = data(prefect_api.execute(q))["tenant"]
    assert tenant == {"info": {"rank": 2, "tags": ["x", "c"]}, "rank": 2, "t": "c", "missing": None}
    agents = "query($w: agent_bool_exp) { agent(where: $w, order_by: {name: asc}) { name } }"
    assert names(prefect_api, agents, {"w": {"labels": {"_contains": ["y"]}}}) == ["ag1"]
    assert names(prefect_api, agents, {"w": {"labels": {"_eq": []}}}) == ["ag2"]
    assert names(prefect_api, agents, {"w": {"labels": {"_contained_in": ["x", "y", "z"]}}}) == [
        "ag1",
        "ag2",
    ]
    assert names(prefect_api, agents, {"w": {"labels": {"_has_key": "x"}}}) == ["ag1"]
    tenants = "query($w: tenant_bool_exp) { tenant(where: $w) { name } }"
    assert names(prefect_api, tenants, {"w": {"info": {"_contains": {"rank": 1}}}}) == ["A"]


def test_timestamps_and_by_pk(prefect_api, rows):
    q = (
        "query($w: tenant_bool_exp) "
        "{ tenant(where: $w, order_by: {created: asc}) { name created } }"
    )
    result = data(prefect_api.execute(q, {"w": {"created": {"_gte": "2021-01-02T00:00:00Z"}}}))
    assert result["tenant"] == [
        {"name": "A", "created": "2021-01-02T00:00:00+00:00"},
        {"name": "C", "created": "2021-01-03T00:00:00+00:00"},
    ]
    bad = prefect_api.execute(q, {"w": {"created": {"_gte": "yesterday-ish"}}})
    assert messages(bad) == [
        'invalid input syntax for type timestamp with time zone: "yesterday-ish"'
    ]
    by_pk = "query($id: uuid!) { tenant_by_pk(id: $id) { slug } }"
    assert data(prefect_api.execute(by_pk, {"id": rows["c"].upper()})) == {
        "tenant_by_pk": {"slug": "c"}
    }
    missing = "0c7e6c2e-1111-4222-8333-944455556666"
    assert data(prefect_api.execute(by_pk, {"id": missing})) == {"tenant_by_pk": None}
    where_bad_uuid = prefect_api.execute('query { tenant(where: {id: {_eq: "x"}}) { slug } }')
    assert messages(where_bad_uuid) == ['invalid input syntax for type uuid: "x"']


def test_aggregates(prefect_api, rows):
    q = """
    query {
      project_aggregate(where: {tenant: {slug: {_eq: "a"}}}) {
        aggregate { count max { name } min { name created } }
        nodes { name }
      }
      tenant(order_by: {slug: asc}) {
        slug
        projects_aggregate { aggregate { count(columns: description) } }
      }
    }"""
    result = data(prefect_api.execute(q))
    aggregate = result["project_aggregate"]["aggregate"]
    assert aggregate["count"] == 2
    assert aggregate["max"] == {"name": "p2"}
    assert aggregate["min"]["name"] == "p1"
    assert aggregate["min"]["created"].endswith("+00:00")
    assert sorted(n["name"] for n in result["project_aggregate"]["nodes"]) == ["p1", "p2"]
    counts = {t["slug"]: t["projects_aggregate"]["aggregate"]["count"] for t in result["tenant"]}
    assert counts == {"a": 1, "b": 1, "c": 0}  # count(columns:) skips NULLs


def test_the_query_of_prefect_get_projects(prefect_api, rows):
    # prefect 1.2.4 cli/get.py: a null name collapses the filter; distinct_on in an aggregate
    q = (
        "query { project(where: {_and: {name: {_eq: null}}}, order_by: {name: asc}) "
        "{ name created description flows_aggregate(distinct_on: name) { aggregate { count } } } }"
    )
    projects = data(prefect_api.execute(q))["project"]
    assert [p["name"] for p in projects] == ["p1", "p2", "p3", "p4"]
    assert {p["flows_aggregate"]["aggregate"]["count"] for p in projects} == {0}
