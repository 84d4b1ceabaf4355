"""DICOM outputs of a job, made with highdicom: SEG, TID 1500 SR, Encapsulated PDF and an
optional secondary-capture overlay series.

Every object keeps the study's patient and study identifiers and starts a new series in
the same study. Every UID is derived from the job uid (:mod:`radpipe.results.uids`), so
making the objects again gives byte-for-byte the same identities and a resend is no
duplicate. Encoding follows the IHE Radiology AI Results (AIR) profile where it applies:
algorithm identification in SEG and SR, TID 1500 measurement groups with tracking
identifiers, references to the source images and to the SEG.
"""
