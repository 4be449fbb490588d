import sys
from pathlib import Path

# Test helper modules (workflow_support) import by name.
sys.path.insert(0, str(Path(__file__).parent))
