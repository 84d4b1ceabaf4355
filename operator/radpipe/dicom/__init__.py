"""radpipe.dicom"""
