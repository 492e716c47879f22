"""Write an offline English corpus: the Python language reference shipped with Python itself
(``pydoc_data.topics``), one topic per paragraph block. Usage: python make_corpus.py OUT.txt"""

import sys
from pathlib import Path
from pydoc_data.topics import topics

out = Path(sys.argv[1] if len(sys.argv) > 1 else "corpus.txt")
out.write_text("\n\n".join(text.strip() for _, text in sorted(topics.items())), encoding="utf-8")
print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
