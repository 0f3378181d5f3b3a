"""The seven stage operators: callables over batches of records (S1-S5 and S6's categories), and the
driver-side steps that need every record (deduplication, S6 balance, S7)."""

from qwenimage.curate.stages.base import Stage
from qwenimage.curate.stages.s1_preprocess import S1Preprocess
from qwenimage.curate.stages.s2_quality import S2Quality
from qwenimage.curate.stages.s3_alignment import S3Alignment
from qwenimage.curate.stages.s4_text import S4Text
from qwenimage.curate.stages.s5_highres import S5HighRes
from qwenimage.curate.stages.s6_balance import S6Categorize, balance
from qwenimage.curate.stages.s7_multiscale import multiscale

__all__ = ["Stage", "S1Preprocess", "S2Quality", "S3Alignment", "S4Text", "S5HighRes", "S6Categorize", "balance",
           "multiscale"]
