"""Tests of skeletonagent.skeleton: layouts and graph adjacency modes."""
import numpy as np
import pytest

from skeletonagent.skeleton import LAYOUTS, Graph, Layout, get_layout

EXPECTED_V = {'nturgb+d': 25, 'openpose': 18, 'coco': 17, 'coco_new': 20, 'uav': 17, 'handmp': 21}
ALL = sorted(LAYOUTS)


def _components(num_node, edges):
    parent = list(range(num_node))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for i, j in edges:
        parent[find(i)] = find(j)
    return len({find(i) for i in range(num_node)})


# ----------------------------------------------------------------------------- layouts

def test_known_layouts():
    assert set(LAYOUTS) == set(EXPECTED_V)


def test_unknown_layout_lists_known_names():
    with pytest.raises(KeyError, match='nturgb\\+d'):
        get_layout('kinect_v1')


def test_get_layout_passes_layout_through():
    layout = get_layout('coco')
    assert get_layout(layout) is layout


@pytest.mark.parametrize('name', ALL)
def test_layout_consistency(name):
    layout = get_layout(name)
    V = EXPECTED_V[name]
    assert isinstance(layout, Layout)
    assert layout.name == name
    assert layout.num_joints == V == len(layout.joint_names)
    assert len(set(layout.joint_names)) == V
    assert 0 <= layout.center < V
    assert 0 <= layout.norm_center < V
    for pairs in (layout.inward, layout.bone_pairs, layout.kbone_pairs):
        assert all(0 <= i < V and 0 <= j < V for i, j in pairs)
    # Joint -> bone: every joint is the first element of exactly one pair.
    assert sorted(v1 for v1, _ in layout.bone_pairs) == list(range(V))
    assert sorted(v1 for v1, _ in layout.kbone_pairs) == list(range(V))
    # No self loops and no duplicated edge in the graph.
    assert all(i != j for i, j in layout.inward)
    assert len({frozenset(e) for e in layout.inward}) == len(layout.inward)
    # Left/right: same length, disjoint, mirror names.
    assert len(layout.left) == len(layout.right)
    assert not set(layout.left) & set(layout.right)
    for left, right in zip(layout.left, layout.right):
        assert 'left' in layout.joint_names[left]
        assert layout.joint_names[left].replace('left', 'right') == layout.joint_names[right]
    flip = layout.flip_index
    assert sorted(flip) == list(range(V))
    assert [flip[i] for i in flip] == list(range(V))  # an involution
    # Mix parts: 5 disjoint groups covering every joint.
    assert len(layout.mix_parts) == 5
    flat = [v for part in layout.mix_parts for v in part]
    assert sorted(flat) == list(range(V))
    # Body parts and synonyms name valid joints.
    assert all(0 <= v < V for part in layout.body_parts.values() for v in part)
    assert all(0 <= v < V for v in layout.synonyms.values())


@pytest.mark.parametrize('name', ALL)
def test_graph_connected(name):
    layout = get_layout(name)
    # The official UAV graph leaves the head (nose, eyes, ears) unlinked to the body.
    expected = 2 if name == 'uav' else 1
    assert _components(layout.num_joints, layout.inward) == expected
    # A tree (V - 1 edges) except UAV's shoulder-hip ring.
    if name != 'uav':
        assert len(layout.inward) == layout.num_joints - 1


@pytest.mark.parametrize('name', ['nturgb+d', 'openpose', 'coco', 'coco_new', 'uav'])
def test_body_part_keys(name):
    parts = get_layout(name).body_parts
    assert {'trunk', 'left_arm', 'right_arm', 'left_leg', 'right_leg'} <= set(parts)


def test_ntu_names_and_official_values():
    ntu = get_layout('nturgb+d')
    assert ntu.joint_names[:4] == ('base of the spine', 'middle of the spine', 'neck', 'head')
    assert ntu.joint_names[20] == 'spine'
    assert ntu.center == 20
    # Official Spatial_Flip order for NTU.
    assert ntu.flip_index == (0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13,
                              14, 15, 20, 23, 24, 21, 22)
    # Official mixup trunk, 1-based [4, 3, 21, 2, 1].
    assert ntu.mix_parts[0] == (3, 2, 20, 1, 0)
    assert (21, 22) in ntu.bone_pairs and (20, 20) in ntu.bone_pairs
    assert ntu.norm_center == 1


def test_openpose_flip_matches_official():
    assert get_layout('openpose').flip_index == (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10,
                                                 15, 14, 17, 16)


def test_coco_flip_matches_kinetics_config():
    for name in ('coco', 'coco_new'):
        layout = get_layout(name)
        assert layout.left == (1, 3, 5, 7, 9, 11, 13, 15)
        assert layout.right == (2, 4, 6, 8, 10, 12, 14, 16)


@pytest.mark.parametrize('name,query,expected', [
    ('nturgb+d', 'left hand', 7), ('nturgb+d', 'Right_Foot', 19), ('nturgb+d', 'chest', 20),
    ('nturgb+d', 'pelvis', 0), ('nturgb+d', 'hip', 0), ('nturgb+d', 'spine base', 0),
    ('coco', 'left hand', 9), ('coco', 'right foot', 16), ('coco', 'nose', 0),
    ('coco_new', 'pelvis', 17), ('coco_new', 'chest', 19), ('openpose', 'chest', 1),
    ('uav', 'right hand', 3), ('uav', 'left hand', 6), ('handmp', 'thumb', 4), ('handmp', 'wrist', 0),
])
def test_index_by_name_and_synonym(name, query, expected):
    assert get_layout(name).index(query) == expected


# The joint numbering of the official per-dataset prompts (round 3 of the initial dialogue),
# 1-based as the prompts write it: masks built from an LLM's joint numbers must land on the
# joints those numbers name there.
OFFICIAL_UAV_NUMBERING = (
    'nose', 'right shoulder', 'right elbow', 'right wrist', 'left shoulder', 'left elbow',
    'left wrist', 'right hip', 'right knee', 'right ankle', 'left hip', 'left knee', 'left ankle',
    'right eye', 'left eye', 'right ear', 'left ear')
OFFICIAL_COCO_NEW_NUMBERING = (
    'nose', 'left eye', 'right eye', 'left ear', 'right ear', 'left shoulder', 'right shoulder',
    'left elbow', 'right elbow', 'left wrist', 'right wrist', 'left hip', 'right hip', 'left knee',
    'right knee', 'left ankle', 'right ankle', 'mid hip', 'thorax', 'mid shoulder')


@pytest.mark.parametrize('name,numbering', [('uav', OFFICIAL_UAV_NUMBERING),
                                            ('coco_new', OFFICIAL_COCO_NEW_NUMBERING)])
def test_joint_names_follow_official_prompt_numbering(name, numbering):
    from skeletonagent.agent.vocab import numbered_joint_list
    layout = get_layout(name)
    assert layout.joint_names == numbering
    listed = numbered_joint_list(layout)
    for number, joint in enumerate(numbering, 1):
        assert f'{number}-{joint}' in listed


def test_uav_sides_follow_names_and_flip_pairs_stay_official():
    uav = get_layout('uav')
    for side, joints in (('left', uav.left), ('right', uav.right)):
        assert all(uav.joint_names[j].startswith(side) for j in joints)
    # official flip pairs (1-based): 2<->5, 3<->6, 4<->7, 8<->11, 9<->12, 10<->13, 14<->15, 16<->17
    pairs = {(1, 4), (2, 5), (3, 6), (7, 10), (8, 11), (9, 12), (13, 14), (15, 16)}
    assert {tuple(sorted(p)) for p in zip(uav.left, uav.right)} == pairs
    assert uav.flip_index == (0, 4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9, 14, 13, 16, 15)
    assert uav.body_parts['right_arm'] == (1, 2, 3) and uav.body_parts['left_leg'] == (10, 11, 12)


def test_index_unknown_name():
    with pytest.raises(KeyError, match="'coco'.*'tail'"):
        get_layout('coco').index('tail')
    assert not get_layout('coco').has_joint('pelvis')


def test_layout_is_frozen():
    layout = get_layout('coco')
    with pytest.raises(AttributeError):
        layout.center = 3
    with pytest.raises(TypeError):
        layout.body_parts['trunk'] = (0,)
    assert hash(layout) == hash('coco')


# ----------------------------------------------------------------------------- graph

def _reference_graph(layout, mode, max_hop=1):
    """PYSKL's Graph, written with its loops, for comparison."""
    V = layout.num_joints
    inward = list(layout.inward)
    outward = [(j, i) for i, j in inward]

    def edge2mat(link):
        A = np.zeros((V, V))
        for i, j in link:
            A[j, i] = 1
        return A

    def normalize(A):
        Dl = A.sum(0)
        Dn = np.zeros((V, V))
        for i in range(V):
            if Dl[i] > 0:
                Dn[i, i] = Dl[i] ** -1
        return A @ Dn

    hop = np.eye(V)
    for i, j in inward:
        hop[i, j] = hop[j, i] = 1
    hop_dis = np.zeros((V, V)) + np.inf
    arrive = np.stack([np.linalg.matrix_power(hop, d) for d in range(max_hop + 1)]) > 0
    for d in range(max_hop, -1, -1):
        hop_dis[arrive[d]] = d

    if mode == 'spatial':
        return np.stack((edge2mat([(i, i) for i in range(V)]), normalize(edge2mat(inward)),
                         normalize(edge2mat(outward))))
    if mode == 'binary_adj':
        return edge2mat(inward + outward)[None]
    adj = np.zeros((V, V))
    adj[hop_dis <= max_hop] = 1
    norm = normalize(adj)
    out = []
    for h in range(max_hop + 1):
        close, further = np.zeros((V, V)), np.zeros((V, V))
        for i in range(V):
            for j in range(V):
                if hop_dis[j, i] == h:
                    if hop_dis[j, layout.center] >= hop_dis[i, layout.center]:
                        close[j, i] = norm[j, i]
                    else:
                        further[j, i] = norm[j, i]
        out.append(close)
        if h > 0:
            out.append(further)
    return np.stack(out)


@pytest.mark.parametrize('name', ALL)
@pytest.mark.parametrize('mode', ['spatial', 'stgcn_spatial', 'binary_adj'])
def test_adjacency_matches_reference(name, mode):
    layout = get_layout(name)
    graph = Graph(name, mode)
    ref = _reference_graph(layout, mode)
    assert graph.A.dtype == np.float32
    assert graph.A.shape == ref.shape
    np.testing.assert_allclose(graph.A, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('name', ALL)
def test_spatial_normalisation(name):
    V = get_layout(name).num_joints
    A = Graph(name, 'spatial').A
    assert A.shape == (3, V, V)
    np.testing.assert_array_equal(A[0], np.eye(V))
    for k in (1, 2):
        col = A[k].sum(0)
        # Every column sums to 1, or 0 for a joint without such an edge.
        assert np.all(np.isclose(col, 1) | np.isclose(col, 0))
    # Inward: one unit column per joint that has a parent (child of some inward edge).
    children = {i for i, _ in get_layout(name).inward}
    assert np.isclose(A[1].sum(), len(children))
    assert np.count_nonzero(A[1].sum(0)) == len(children)


@pytest.mark.parametrize('name', ALL)
def test_stgcn_spatial_columns_sum_to_one(name):
    A = Graph(name, 'stgcn_spatial').A
    V = get_layout(name).num_joints
    assert A.shape == (3, V, V)
    np.testing.assert_allclose(A.sum(0).sum(0), np.ones(V), rtol=1e-6)


@pytest.mark.parametrize('name', ALL)
def test_binary_adj_symmetric(name):
    A = Graph(name, 'binary_adj').A
    assert A.shape[0] == 1
    np.testing.assert_array_equal(A[0], A[0].T)
    assert A.sum() == 2 * len(get_layout(name).inward)
    assert set(np.unique(A)) <= {0.0, 1.0}


def test_random_mode_same_seed_as_hand_computation():
    np.random.seed(7)
    A = Graph('nturgb+d', 'random', num_filter=8, init_off=.04, init_std=.02).A
    np.random.seed(7)
    expected = np.random.randn(8, 25, 25) * .02 + .04
    assert A.shape == (8, 25, 25) and A.dtype == np.float32
    np.testing.assert_allclose(A, expected.astype(np.float32))
    np.random.seed(7)
    np.testing.assert_array_equal(Graph('nturgb+d', 'random', num_filter=8).A, A)


def test_random_mode_nx_node():
    A = Graph('coco', 'random', num_filter=2, nx_node=2).A
    assert A.shape == (2, 34, 34)
    with pytest.raises(ValueError, match='nx_node'):
        Graph('coco', 'spatial', nx_node=2)


def test_stgcn_spatial_max_hop_2():
    layout = get_layout('coco')
    A = Graph('coco', 'stgcn_spatial', max_hop=2).A
    np.testing.assert_allclose(A, _reference_graph(layout, 'stgcn_spatial', max_hop=2), atol=1e-7)
    assert A.shape == (5, 17, 17)


def test_unknown_mode():
    with pytest.raises(ValueError, match='spatial'):
        Graph('coco', 'fancy')


def test_layout_and_graph_pickle_and_copy():
    import copy
    import pickle
    for name in ALL:
        layout = get_layout(name)
        assert pickle.loads(pickle.dumps(layout)) is layout
        assert copy.deepcopy(layout) is layout and copy.copy(layout) is layout
    graph = pickle.loads(pickle.dumps(Graph('uav', 'spatial')))
    np.testing.assert_array_equal(graph.A, Graph('uav', 'spatial').A)


# ----------------------------------------------------------------------------- geometry
def test_infer_layout_from_joint_count():
    from skeletonagent.skeleton import infer_layout
    assert [infer_layout(v) for v in (25, 18, 17, 20, 21)] == [
        'nturgb+d', 'openpose', 'coco', 'coco_new', 'handmp']
    with pytest.raises(ValueError, match='no skeleton layout has 7 joints; known: .*25'):
        infer_layout(7)


def test_rest_pose_by_joint_name():
    from skeletonagent.skeleton import REST_POSES, rest_pose
    pose = rest_pose('nturgb+d')
    ntu = get_layout('nturgb+d')
    assert pose.shape == (25, 3)
    assert tuple(pose[ntu.index('right elbow')]) == (-0.22, 1.12, -0.04)   # mirrored left
    assert set(REST_POSES['nturgb+d']) == set(ntu.joint_names)
    with pytest.raises(KeyError, match="no rest pose for layout 'coco'"):
        rest_pose('coco')
    with pytest.raises(TypeError):
        REST_POSES['nturgb+d']['head'] = (0, 0, 0)     # shared geometry is read-only


def test_layout_tree_from_the_pelvis():
    from skeletonagent.skeleton import layout_tree
    ntu = get_layout('nturgb+d')
    tree = layout_tree(ntu, root='pelvis')
    assert tree.root == 0 and tree.parent[0] == -1 and tree.depth[0] == 0
    assert tree.parent[ntu.index('left elbow')] == ntu.index('left shoulder')
    # pelvis -> middle of the spine -> spine -> left shoulder -> left elbow
    assert tree.depth[ntu.index('left elbow')] == 4
    assert {ntu.joint_names[j] for j in tree.subtree(ntu.index('left elbow'))} == {
        'left elbow', 'left wrist', 'left hand', 'tip of the left hand', 'left thumb'}
    assert tree.subtree(0) == tuple(range(25))
    assert layout_tree(ntu).root == ntu.center


def test_layout_tree_leaves_other_components_unattached():
    """The official uav graph has two components: joints off the root's have no parent."""
    from skeletonagent.skeleton import layout_tree
    uav = get_layout('uav')
    tree = layout_tree(uav)
    unattached = [j for j in range(uav.num_joints) if j != tree.root and tree.parent[j] == -1]
    assert unattached and _components(uav.num_joints, uav.inward) == 2
    assert all(j not in tree.subtree(tree.root) for j in unattached)
