"""What schemathesis cannot know from SpawnIt's OpenAPI document, and only that.

The document states every constraint the server checks on a request by itself (ids, ranges,
enums, required fields, lengths, patterns). A few answers depend on facts that exist only at run
time; a schema-valid request refused for one of them (422) is not a disagreement between the
document and the server, so the positive_data_acceptance failure it raises is dropped here:

- a template's parameters: which names exist, which are required, their types and ranges are the
  template's (`GET /api/catalog/{template}`), named in the request (service_create) or by the
  stored service (service_update); the 422 then names those parameters;
- the aws provider: its settings (`aws`, `aws.*`) are checked by that provider's rules and need
  the provider, which the test server does not configure (code provider_missing);
- time: a lease's `expires_at` must be in the future when the request arrives.
- the Swarm cluster: the test server has none, so every node and lease operation answers that
  none is configured (code no_cluster, 503) whatever the request; its routes are checked on a
  real Swarm by nodes.rs and security.rs;
- a service's replicas: which of its containers are replicated, and the bounds of their scale
  policy, are the stored service's (service_scale); the 422 then names the container or the
  template's replicas parameter and says why.

Every other failure, of every check, is kept.
"""

import schemathesis

# The request body fields each operation documents (not template parameters).
BODY_FIELDS = {
    "service_create": {"template", "name", "network", "params", "exposure", "provider", "drift_policy", "aws"},
    "service_update": {"params", "exposure", "drift_policy"},
}


def _runtime_fact(operation_id, response):
    try:
        error = response.json()["error"]
    except Exception:
        return False
    if error.get("code") == "provider_missing":
        return operation_id == "service_create"
    if error.get("code") != "invalid_input" or not isinstance(error.get("details"), list):
        return False
    fields = [d.get("field", "") for d in error["details"]]
    if not fields:
        return False
    if operation_id in BODY_FIELDS:
        documented = BODY_FIELDS[operation_id] - {"aws"}
        return all(f not in documented and f != "body" for f in fields)
    if operation_id == "service_scale":
        return all(
            "replicated container" in d.get("reason", "")
            or "fixed replica count" in d.get("reason", "")
            or "scale policy" in d.get("reason", "")
            for d in error["details"]
        )
    if operation_id == "lease_set":
        return all(d.get("field") == "expires_at" and "future" in d.get("reason", "") for d in error["details"])
    return False


def _code(response):
    try:
        return response.json()["error"]["code"]
    except Exception:
        return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if _code(response) == "no_cluster":
        return False
    if response.status_code != 422 or "positive_data_acceptance" not in getattr(failure, "checks", ()):
        return True
    return not _runtime_fact(case.operation.definition.raw.get("operationId"), response)
