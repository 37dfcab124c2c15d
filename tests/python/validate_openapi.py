"""Validates the OpenAPI document on stdin (openapi-spec-validator) and checks it is 3.1.

Prints nothing and exits 0 when valid; prints the first error and exits 1 otherwise.
"""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator

document = json.load(sys.stdin)
if not str(document.get("openapi", "")).startswith("3.1"):
    sys.exit(f"openapi is {document.get('openapi')!r}, not 3.1")
errors = list(OpenAPIV31SpecValidator(document).iter_errors())
for error in errors[:5]:
    print(f"{'/'.join(map(str, error.absolute_path))}: {error.message}")
sys.exit(1 if errors else 0)
