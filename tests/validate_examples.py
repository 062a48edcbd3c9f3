"""Validate experiment documents against the generated CRD's openAPIV3Schema.

    python3 tests/validate_examples.py deploy/crd.yaml experiments/*.yaml

Exits 1 naming the file and the path of every violation. Needs PyYAML and jsonschema (both come
with kubernetes-validate).
"""

import sys

import jsonschema
import yaml


def main(crd_path, documents):
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft7Validator(schema)
    failures = 0
    for path in documents:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "Experiment":
                    continue
                errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
                for e in errors:
                    failures += 1
                    where = ".".join(str(p) for p in e.path) or "(root)"
                    print(f"{path}: {where}: {e.message}")
                if not errors:
                    print(f"{path}: valid against {crd_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
