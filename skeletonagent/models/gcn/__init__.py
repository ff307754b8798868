"""GCN building blocks and the SkeletonAgent backbones."""
from .backbones import GCN_Block, GCN_Module_LLM, GCN_Module_LLM_K400
from .stgcn import STGCN
from .units import DEFAULT_MS_CFG, GCNUnit, MSTCNUnit, TemporalConv, base_tcn, fuse_for_inference, gcn_unit, mstcn_unit

__all__ = ['GCN_Block', 'GCN_Module_LLM', 'GCN_Module_LLM_K400', 'STGCN', 'GCNUnit', 'MSTCNUnit', 'TemporalConv',
           'gcn_unit', 'mstcn_unit', 'base_tcn', 'DEFAULT_MS_CFG', 'fuse_for_inference']
