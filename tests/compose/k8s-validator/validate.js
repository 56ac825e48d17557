// Validates Kubernetes objects against the OpenAPI schemas that
// kubernetes-models bundles (offline: no cluster, no download).
// stdin: a JSON array of {"source": "...", "object": {...}};
// stdout: a JSON array of {"source", "kind", "name", "errors": [...]}.
"use strict";

function modelFor(apiVersion, kind) {
  // "v1" -> kubernetes-models/v1/Pod, "batch/v1" -> kubernetes-models/batch/v1/Job
  const path = `kubernetes-models/${apiVersion}/${kind}`;
  try {
    return require(path)[kind];
  } catch (e) {
    if (e.code === "MODULE_NOT_FOUND") return null;
    throw e;
  }
}

const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const results = input.map(({ source, object }) => {
  const kind = object && object.kind;
  const name = object && object.metadata && object.metadata.name;
  const Model = modelFor(String(object && object.apiVersion), String(kind));
  if (!Model) {
    return { source, kind, name, errors: [`unknown apiVersion/kind ${object.apiVersion}/${kind}`] };
  }
  try {
    new Model(object).validate();
    return { source, kind, name, errors: [] };
  } catch (e) {
    return { source, kind, name, errors: [e.message] };
  }
});
process.stdout.write(JSON.stringify(results));
